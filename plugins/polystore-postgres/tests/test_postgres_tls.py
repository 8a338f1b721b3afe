"""TLS options reach the driver: verified connections, and a refused certificate.

A private server of this module's own runs with ``ssl = on`` and a certificate signed by
a throw-away CA made with the ``openssl`` command.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from polystore_postgres import PostgresBackend, PostgresSettings

from polystore import StoreError
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceEndpoint, ServiceUnavailable

pytestmark = pytest.mark.asyncio


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def _make_ca(folder: Path, name: str) -> None:
    _openssl(
        folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
    )  # fmt: skip


def _make_certificates(folder: Path) -> None:
    _make_ca(folder, "ca")
    _make_ca(folder, "other-ca")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        folder, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=localhost",
    )  # fmt: skip
    _openssl(
        folder, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip


@pytest.fixture(scope="module")
def tls_server(request: pytest.FixtureRequest) -> Iterator[tuple[ServiceEndpoint, Path]]:
    """A private server with TLS on, and the folder holding ``ca.crt`` and ``other-ca.crt``."""
    from polystore.testing import LocalPostgresServer

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    folder = Path(tempfile.mkdtemp(prefix="polystore-pg-tls-"))
    try:
        folder.chmod(0o755)
        _make_certificates(folder)
        key = folder / "server.key"
        key.chmod(0o600)
        if os.geteuid() == 0:  # the server runs as another user and must own its key
            users = {entry.pw_name: entry for entry in pwd.getpwall()}
            owner = users.get("postgres") or users.get("nobody")
            if owner is not None:
                os.chown(key, owner.pw_uid, owner.pw_gid)
        (folder / "server.crt").chmod(0o644)
        args = [
            "-c", "ssl=on",
            "-c", f"ssl_cert_file={folder / 'server.crt'}",
            "-c", f"ssl_key_file={key}",
        ]  # fmt: skip
        try:
            endpoint = LocalPostgresServer(extra_args=args)
        except ServiceUnavailable as exc:
            if skip_allowed(request.config):
                pytest.skip(str(exc))
            raise
        try:
            endpoint.start()
            yield endpoint, folder
        finally:
            endpoint.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _port(server: ServiceEndpoint) -> int:
    return int(server.url.rsplit(":", 1)[1].split("/")[0])


@pytest_asyncio.fixture
async def verified(tls_server: tuple[ServiceEndpoint, Path]) -> AsyncIterator[PostgresBackend]:
    server, folder = tls_server
    settings = PostgresSettings(
        host="localhost",
        port=_port(server),
        user="postgres",
        database="postgres",
        sslmode="verify-full",
        sslrootcert=str(folder / "ca.crt"),
        reap_interval=None,
    )
    async with PostgresBackend(settings) as backend:
        yield backend


async def _encrypted(backend: PostgresBackend) -> bool:
    conn = await backend.acquire(5.0)
    try:
        return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    finally:
        await backend.release(conn)


async def test_verify_full_connects_encrypted_to_a_server_the_ca_signed(
    verified: PostgresBackend,
) -> None:
    await verified.namespace("tls").save("k", {"v": 1})
    assert await verified.namespace("tls").get("k") == {"v": 1}
    assert await _encrypted(verified) is True


async def test_a_certificate_from_another_ca_is_refused(
    tls_server: tuple[ServiceEndpoint, Path],
) -> None:
    server, folder = tls_server
    settings = PostgresSettings(
        url=f"postgresql://postgres@localhost:{_port(server)}/postgres",
        sslmode="verify-full",
        sslrootcert=str(folder / "other-ca.crt"),
        connect_timeout=5,
    )
    backend = PostgresBackend(settings)
    with pytest.raises(StoreError, match="certificate"):
        await backend.open()
    await backend.aclose()


async def test_sslmode_disable_connects_in_clear(
    tls_server: tuple[ServiceEndpoint, Path],
) -> None:
    server, _ = tls_server
    settings = PostgresSettings(url=server.url, sslmode="disable", reap_interval=None)
    async with PostgresBackend(settings) as backend:
        assert await _encrypted(backend) is False
