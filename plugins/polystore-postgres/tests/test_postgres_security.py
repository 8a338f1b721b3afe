"""Injection strings as data, and passwords that never surface.

A private server of this module's own requires a password (SCRAM) for every role but
the superuser; the tests connect as a password-protected role.
"""

from __future__ import annotations

import logging
import tempfile
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pydantic
import pytest
import pytest_asyncio
from polystore_postgres import PostgresBackend, PostgreSQLStore, PostgresSettings

from polystore import PolystoreError, StoreError, ValidationError
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceEndpoint, ServiceUnavailable

pytestmark = pytest.mark.asyncio

ROLE = "polystore_app"
PASSWORD = "Pw-7f3c9a:@/%'\"q"
"""Characters that need quoting in URLs and SQL, to prove the password is never spliced."""

INJECTIONS = [
    "'; DROP TABLE polystore.polystore_namespaces; --",
    "Robert'); DROP TABLE students;--",
    '" OR 1=1 --',
    "$1",
    "$$; SELECT pg_sleep(10); $$",
    "key' OR 'a'='a",
    "\\'; --",
    "%_*?[]",
    "/* comment */ SELECT 1",
    "\u2019; DROP SCHEMA polystore CASCADE; --",
]

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


@pytest.fixture(scope="module")
def auth_server(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A private local server that checks passwords (a role, password-protected)."""
    from polystore.testing import LocalPostgresServer

    folder = Path(tempfile.mkdtemp(prefix="polystore-pg-hba-"))
    folder.chmod(0o755)
    hba = folder / "pg_hba.conf"
    hba.write_text(HBA)
    hba.chmod(0o644)
    try:
        endpoint = LocalPostgresServer(extra_args=["-c", f"hba_file={hba}"])
    except ServiceUnavailable as exc:
        if skip_allowed(request.config):
            pytest.skip(str(exc))
        raise
    try:
        endpoint.start()
        yield endpoint
    finally:
        endpoint.close()
        hba.unlink()
        folder.rmdir()


@pytest.fixture(scope="module")
def app_url(auth_server: ServiceEndpoint) -> str:
    """A URL logging in as the password-protected role."""
    import asyncio

    async def create_role() -> None:
        conn = await asyncpg.connect(auth_server.url)
        try:
            literal = PASSWORD.replace("'", "''")
            await conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{literal}'")
            await conn.execute(f"GRANT CREATE ON DATABASE postgres TO {ROLE}")
        finally:
            await conn.close()

    asyncio.run(create_role())
    port = auth_server.url.rsplit(":", 1)[1].split("/")[0]
    return f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/postgres"


@pytest_asyncio.fixture
async def backend(app_url: str) -> AsyncIterator[PostgresBackend]:
    async with PostgresBackend(PostgresSettings(url=app_url, reap_interval=None)) as backend:
        yield backend


@pytest_asyncio.fixture
async def store(backend: PostgresBackend) -> PostgreSQLStore:
    store = backend.namespace(f"sec-{uuid.uuid4().hex[:12]}")
    assert isinstance(store, PostgreSQLStore)
    return store


def _everything_said(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error)


# -- injection strings are data -------------------------------------------------------------


async def test_the_server_really_checks_the_password(app_url: str) -> None:
    wrong = app_url.replace(quote(PASSWORD, safe=""), "wrong")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_injection_strings_as_keys_round_trip(store: PostgreSQLStore) -> None:
    items = {key: {"key": key} for key in INJECTIONS}
    await store.save_many(items)
    for key in INJECTIONS:
        assert await store.get(key) == {"key": key}
        assert await store.exists(key)
    assert await store.get_many(INJECTIONS) == [items[k] for k in INJECTIONS]
    assert sorted([k async for k in store.scan()]) == sorted(INJECTIONS)
    for key in INJECTIONS:
        assert [k async for k in store.scan(prefix=key)] == [key]
    assert await store.delete(INJECTIONS[0]) is True
    assert await store.delete_many(INJECTIONS) == len(INJECTIONS) - 1


async def test_injection_strings_as_values_and_fields_round_trip_and_are_found(
    store: PostgreSQLStore,
) -> None:
    for i, text in enumerate(INJECTIONS):
        value = {text: text, "n": i, "nested": {text: [text]}}
        version = await store.save(f"k{i}", value)
        await store.save(f"k{i}", value, if_version=version)
        assert await store.get(f"k{i}") == value
        assert [e.key for e in await store.find({"n": i, "x" + text[:1]: None})] == []
        if "." in text or text.startswith("$"):  # not a field name find accepts
            with pytest.raises(ValidationError):
                await store.find({text: text})
        else:
            assert [e.key for e in await store.find({text: text})] == [f"k{i}"]


async def test_injection_strings_as_namespaces_are_rejected(backend: PostgresBackend) -> None:
    for name in INJECTIONS:
        with pytest.raises(ValidationError):
            backend.namespace(name)


async def test_odd_but_allowed_namespaces_map_to_their_own_tables(
    backend: PostgresBackend,
) -> None:
    names = ["a.b:c/d-e", "a_b_c_d_e", "A.B:C/D-E", "--", "..", "x" * 128]
    for name in names:
        await backend.namespace(name).save("k", name)
    for name in names:
        assert await backend.namespace(name).get("k") == name


async def test_the_tables_survive_the_injection_attempts(
    auth_server: ServiceEndpoint, store: PostgreSQLStore
) -> None:
    await store.save_many({key: key for key in INJECTIONS})
    conn = await asyncpg.connect(auth_server.url)
    try:
        assert await conn.fetchval("SELECT to_regclass('polystore.polystore_namespaces')")
        sleeping = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        assert await conn.fetchval(sleeping) == 0
    finally:
        await conn.close()


# -- the password never surfaces ------------------------------------------------------------


async def test_no_password_in_reprs_health_or_logs(
    app_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = PostgresSettings(url=app_url, reap_interval=None)
    async with PostgresBackend(settings) as backend:
        store = backend.namespace("logged")
        await store.save("k", 1)
        health = await backend.health()
        shown = [repr(backend), repr(store), repr(settings), str(settings), health.detail]
        shown.append(settings.model_dump_json())
    assert health.ok
    for text in [*shown, caplog.text]:
        assert PASSWORD not in text
        assert quote(PASSWORD, safe="") not in text


async def test_a_wrong_password_fails_without_showing_any_password(app_url: str) -> None:
    wrong = "Wr0ng-" + PASSWORD
    url = app_url.replace(quote(PASSWORD, safe=""), quote(wrong, safe=""))
    backend = PostgresBackend(PostgresSettings(url=url, reap_interval=None))
    with pytest.raises(StoreError) as info:
        await backend.namespace("x").get("k")
    said = _everything_said(info.value)
    assert getattr(info.value, "sqlstate", None) == "28P01"
    assert wrong not in said
    assert quote(wrong, safe="") not in said
    health = await backend.health()
    assert health.ok is False
    assert wrong not in health.detail
    await backend.aclose()


async def test_a_password_given_as_a_field_is_used_and_never_shown(app_url: str) -> None:
    port = app_url.rsplit(":", 1)[1].split("/")[0]
    settings = PostgresSettings(
        host="127.0.0.1", port=int(port), user=ROLE, password=PASSWORD, database="postgres"
    )
    async with PostgresBackend(settings) as backend:
        await backend.namespace("fields").save("k", 1)
        assert PASSWORD not in repr(backend)
    down = PostgresSettings(host="127.0.0.1", port=1, user=ROLE, password=PASSWORD)
    backend = PostgresBackend(down)
    with pytest.raises(PolystoreError) as info:
        await backend.namespace("x").get("k")
    assert PASSWORD not in _everything_said(info.value)
    await backend.aclose()


async def test_a_malformed_url_is_reported_without_its_password() -> None:
    url = f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:notaport/postgres"
    with pytest.raises(pydantic.ValidationError) as info:  # before anything connects
        PostgresSettings(url=url)
    said = _everything_said(info.value)
    assert "notaport" in said
    assert PASSWORD not in said
    assert quote(PASSWORD, safe="") not in said
