"""Real-server endpoints: local launchers, fault controls, provider order, pytest plugin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from polystore.testing import LocalRedisCluster, _servers
from polystore.testing.services import (
    ALLOW_SKIP_ENV,
    DOCKER_ENV,
    FaultControlError,
    ServiceEndpoint,
    ServiceUnavailable,
    docker_available,
    free_port,
    resolve_service,
    url_env,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_outside_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from "no URL given, no Docker": the local provider is the default."""
    for name in ("redis", "postgres", "mongodb", "redis_cluster"):
        monkeypatch.delenv(url_env(name), raising=False)
    monkeypatch.delenv(ALLOW_SKIP_ENV, raising=False)
    monkeypatch.setenv(DOCKER_ENV, "0")


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PATH is an empty directory and the fallback directories are gone."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(_servers, "fallback_bin_dirs", list)


@pytest.fixture
def endpoint_of() -> Iterator[list[ServiceEndpoint]]:
    """Collects endpoints and closes them after the test."""
    endpoints: list[ServiceEndpoint] = []
    yield endpoints
    for endpoint in endpoints:
        endpoint.close()


@contextlib.asynccontextmanager
async def _redis(url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


def _uid_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}").st_uid


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- Redis ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_local_redis_answers_and_keeps_writes_across_restart_and_kill(
    endpoint_of: list[ServiceEndpoint],
) -> None:
    redis = resolve_service("redis", allow_skip=False)
    endpoint_of.append(redis)
    assert isinstance(redis, _servers.LocalRedisServer)
    assert redis.provider == "local"
    assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
    url, data_dir = redis.url, redis.data_dir

    async with _redis(url) as client:
        assert await client.ping() is True
        await client.set("before-restart", "1")
    redis.restart()
    async with _redis(url) as client:  # a fresh connection to the same URL
        assert await client.get("before-restart") == b"1"
        await client.set("before-kill", "2")
    redis.kill()
    assert not redis.is_running()
    with pytest.raises(ConnectionError):
        socket.create_connection(("127.0.0.1", redis.port), timeout=1).close()
    redis.start()
    assert (redis.url, redis.data_dir) == (url, data_dir)
    async with _redis(url) as client:
        assert await client.mget("before-restart", "before-kill") == [b"1", b"2"]


@pytest.mark.asyncio
async def test_local_redis_extra_args_password(endpoint_of: list[ServiceEndpoint]) -> None:
    redis = resolve_service("redis", allow_skip=False, extra_args=["--requirepass", "s3cret"])
    endpoint_of.append(redis)
    assert redis.url.startswith("redis://:s3cret@127.0.0.1:")
    assert isinstance(redis, _servers.LocalRedisServer)
    async with _redis(redis.url) as client:
        assert await client.ping() is True
    with pytest.raises(ServiceUnavailable, match="NOAUTH"):
        _servers.redis_command(redis.port, "PING")
    assert _servers.redis_command(redis.port, "PING", password="s3cret") == "PONG"


def test_close_kills_the_process_and_removes_the_data(endpoint_of: list[ServiceEndpoint]) -> None:
    redis = _servers.LocalRedisServer()
    endpoint_of.append(redis)
    redis.start()
    assert redis._proc is not None
    pid = redis._proc.pid
    assert redis.data_dir.is_dir()
    redis.close()
    redis.close()  # idempotent
    assert not _pid_alive(pid)
    assert not redis.data_dir.exists()
    with pytest.raises(ServiceUnavailable, match="closed"):
        redis.start()


def test_failed_start_reports_the_log_tail(endpoint_of: list[ServiceEndpoint]) -> None:
    redis = _servers.LocalRedisServer(extra_args=["--no-such-directive", "yes"])
    endpoint_of.append(redis)
    with pytest.raises(ServiceUnavailable) as failure:
        redis.start()
    message = str(failure.value)
    assert "exited with code" in message
    assert "no-such-directive" in message  # redis-server's own complaint, from the log
    assert str(redis.port) in message


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_local_postgres_answers_and_keeps_commits_across_restart_and_kill(
    endpoint_of: list[ServiceEndpoint],
) -> None:
    postgres = resolve_service("postgres", allow_skip=False)
    endpoint_of.append(postgres)
    assert isinstance(postgres, _servers.LocalPostgresServer)
    assert postgres.url == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    assert postgres._proc is not None
    if os.geteuid() == 0:  # postgres refuses root; it must run as an unprivileged user
        assert _uid_of(postgres._proc.pid) != 0

    conn = await asyncpg.connect(postgres.url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW fsync") == "on"
        await conn.execute("CREATE TABLE t (k text PRIMARY KEY)")
        await conn.execute("INSERT INTO t VALUES ('before-restart')")
    finally:
        await conn.close()
    postgres.restart()
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute("INSERT INTO t VALUES ('before-kill')")
        postgres.kill()  # the connection is still open: the whole process group dies
    finally:
        conn.terminate()
    postgres.start()
    conn = await asyncpg.connect(postgres.url)
    try:
        rows = await conn.fetch("SELECT k FROM t ORDER BY k")
        assert [r["k"] for r in rows] == ["before-kill", "before-restart"]
    finally:
        await conn.close()


# --- MongoDB (secantusd-py) ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_local_mongodb_answers_runs_transactions_and_keeps_acked_writes_after_kill(
    endpoint_of: list[ServiceEndpoint],
) -> None:
    mongo = resolve_service("mongodb", allow_skip=False)
    endpoint_of.append(mongo)
    assert isinstance(mongo, _servers.LocalMongoServer)
    assert mongo.url == f"mongodb://127.0.0.1:{mongo.port}/?directConnection=true"

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo.url, serverSelectionTimeoutMS=10_000
    )
    try:
        assert (await client.admin.command("ping"))["ok"] == 1
        hello = await client.admin.command("hello")
        assert hello["isWritablePrimary"] is True
        assert hello["setName"] == "secantus"
        coll = client.db.items
        async with client.start_session() as session, await session.start_transaction():
            await coll.insert_one({"_id": "tx-a"}, session=session)
            await coll.insert_one({"_id": "tx-b"}, session=session)
        for i in range(200):
            await coll.insert_one({"_id": i})
        mongo.kill()
        mongo.start()
        assert await coll.count_documents({}) == 202
        await coll.insert_one({"_id": "before-restart"})
        mongo.restart()
        assert await coll.find_one({"_id": "before-restart"}) == {"_id": "before-restart"}
        assert await coll.count_documents({}) == 203
    finally:
        await client.close()


# --- Redis Cluster -------------------------------------------------------------------------


async def _use_cluster(cluster: LocalRedisCluster) -> None:
    client = RedisCluster.from_url(cluster.url)
    try:
        keys = [f"key-{i}" for i in range(30)]
        for key in keys:
            await client.set(key, key)
        owners = {getattr(client.get_node_from_key(key), "port", None) for key in keys}
        assert owners == {node.port for node in cluster.nodes}
        victim = cluster.nodes[1]
        victim.kill()
        victim.start()
        cluster.wait_ok()
        assert [await client.get(key) for key in keys] == [key.encode() for key in keys]
    finally:
        await client.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("use_redis_cli", [None, False], ids=["redis-cli", "cluster-commands"])
async def test_local_redis_cluster_three_masters(
    endpoint_of: list[ServiceEndpoint], use_redis_cli: bool | None
) -> None:
    cluster = LocalRedisCluster(use_redis_cli=use_redis_cli)
    endpoint_of.append(cluster)
    if use_redis_cli is None:
        assert cluster.redis_cli is not None
    cluster.start()
    assert cluster.url == f"redis://127.0.0.1:{cluster.nodes[0].port}"
    assert len(cluster.nodes) == 3
    info = cluster.cluster_info(2)
    assert info["cluster_state"] == "ok"
    assert info["cluster_known_nodes"] == "3"
    assert info["cluster_size"] == "3"
    assert info["cluster_slots_assigned"] == "16384"
    await _use_cluster(cluster)


# --- Provider order ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_url_from_env_wins_and_has_no_fault_control(
    endpoint_of: list[ServiceEndpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    private = _servers.LocalRedisServer()
    endpoint_of.append(private)
    private.start()
    monkeypatch.setenv("POLYSTORE_TEST_REDIS_URL", private.url)
    given = resolve_service("redis", allow_skip=False)
    endpoint_of.append(given)
    assert given.provider == "url"
    assert given.url == private.url
    async with _redis(given.url) as client:
        assert await client.ping() is True
    for action in (given.stop, given.start, given.kill, given.restart):
        with pytest.raises(FaultControlError, match="needs a private server") as failure:
            action()
        assert "POLYSTORE_TEST_REDIS_URL" in str(failure.value)
    given.close()
    assert private.is_running()  # closing a URL endpoint leaves the server alone


def test_unreachable_url_from_env_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSTORE_TEST_POSTGRES_URL", f"postgresql://x@127.0.0.1:{free_port()}/x")
    with pytest.raises(ServiceUnavailable, match="POLYSTORE_TEST_POSTGRES_URL"):
        resolve_service("postgres", allow_skip=False)


def test_docker_is_not_detected_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DOCKER_ENV)
    if os.path.exists("/var/run/docker.sock") or os.environ.get("DOCKER_HOST"):
        pytest.skip("this machine has a Docker engine configured")
    for module in ("docker", "testcontainers", "testcontainers.core.container"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    assert docker_available() is False
    # Cheap: with no engine configured, not even the Docker client is imported.
    assert "docker" not in sys.modules
    assert "testcontainers" not in sys.modules


def test_docker_host_that_does_not_answer_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DOCKER_ENV)
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert docker_available(timeout=2.0) is False
    assert time.monotonic() - started < 5.0


def test_docker_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setenv(DOCKER_ENV, "0")
    assert docker_available() is False


def test_local_binaries_are_found_outside_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint_of: list[ServiceEndpoint]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    # secantusd-py sits next to the interpreter; PostgreSQL in /usr/lib/postgresql/*/bin.
    secantus = _servers.find_binary("secantusd-py")
    assert secantus is not None
    assert Path(secantus).parent == Path(sys.executable).parent
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        return
    postgres = _servers.LocalPostgresServer()
    endpoint_of.append(postgres)
    assert postgres.binary.startswith("/usr/lib/postgresql/")
    assert Path(postgres.initdb).parent == Path(postgres.binary).parent


@pytest.mark.usefixtures("nothing_installed")
@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("redis", "redis-server"),
        ("postgres", "initdb"),
        ("mongodb", "pip install SecantusDB==0.7.0b3"),
        ("redis_cluster", "redis-cli"),
    ],
)
def test_nothing_available_says_how_to_provide_a_server(name: str, hint: str) -> None:
    with pytest.raises(ServiceUnavailable) as failure:
        resolve_service(name, allow_skip=False)
    message = str(failure.value)
    assert f"POLYSTORE_TEST_{name.upper()}_URL=" in message
    assert hint in message
    assert ALLOW_SKIP_ENV in message
    assert "--polystore-allow-skip" in message
    if name != "redis_cluster":
        assert "Docker" in message
        assert "no Docker engine answered" in message


@pytest.mark.usefixtures("nothing_installed")
def test_nothing_available_skips_when_allowed() -> None:
    with pytest.raises(pytest.skip.Exception, match="POLYSTORE_TEST_MONGODB_URL"):
        resolve_service("mongodb", allow_skip=True)


def test_unknown_service_name() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        resolve_service("cassandra", allow_skip=True)


# --- The pytest plugin ---------------------------------------------------------------------

INNER_TESTS = """
    import os
    from pathlib import Path

    def test_records_and_fails(redis_service):
        Path("seen.txt").write_text(f"{redis_service._proc.pid} {redis_service.data_dir}")
        assert False, "deliberate failure"

    def test_same_session_endpoint(redis_service):
        pid, _ = Path("seen.txt").read_text().split()
        assert redis_service._proc.pid == int(pid)
        assert redis_service.provider == "local"
"""


def _run_inner(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT), DOCKER_ENV: "0"}
    argv = [sys.executable, "-m", "pytest", "-p", "polystore.testing.fixtures", "-rs", "-q"]
    return subprocess.run(
        [*argv, "-p", "no:cacheprovider", *args, "test_inner.py"],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plugin_fixture_is_session_scoped_and_cleans_up_after_failures(tmp_path: Path) -> None:
    result = _run_inner(tmp_path, env={})
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    pid, data_dir = (tmp_path / "seen.txt").read_text().split()
    assert not _pid_alive(int(pid))
    assert not Path(data_dir).exists()


def test_plugin_errors_when_no_server_and_skipping_not_allowed(tmp_path: Path) -> None:
    refused = _run_inner(tmp_path, env={"PATH": str(tmp_path)})
    assert "2 errors" in refused.stdout, refused.stdout + refused.stderr
    assert "POLYSTORE_TEST_REDIS_URL=" in refused.stdout
    assert "install redis-server" in refused.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--polystore-allow-skip"], {}), ([], {ALLOW_SKIP_ENV: "1"})],
    ids=["option", "env"],
)
def test_plugin_skips_when_allowed(tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    skipped = _run_inner(tmp_path, *args, env={"PATH": str(tmp_path), **env})
    assert "2 skipped" in skipped.stdout, skipped.stdout + skipped.stderr
    assert "No redis server is available" in skipped.stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_killing_a_paused_postgres_kills_its_backend_processes_too() -> None:
    # PostgreSQL puts each backend in a session of its own, so a signal to the
    # postmaster's process group misses them; a frozen backend would outlive the crash.
    server = _servers.LocalPostgresServer(port=None)
    children: list[int] = []

    async def crash_with_a_client_connected() -> None:
        conn = await asyncpg.connect(server.url)
        assert server._proc is not None
        children.extend(_servers._descendants(server._proc.pid))
        server.pause()
        server.kill()
        conn.terminate()
        await asyncio.sleep(0.05)  # let the aborted transport close

    try:
        server.start()
        asyncio.run(crash_with_a_client_connected())
        assert len(children) >= 2, "postgres serves each connection from a child process"

        deadline = time.monotonic() + 3
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)

        assert [pid for pid in children if _alive(pid)] == []
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        server.close()


def test_a_paused_redis_answers_nothing_until_resumed() -> None:
    import socket

    server = _servers.LocalRedisServer(port=None)
    try:
        server.start()
        server.pause()
        # pause() returns only once every thread of the server is stopped.
        assert server._proc is not None
        threads = list(Path(f"/proc/{server._proc.pid}/task").glob("*/stat"))
        assert threads
        assert all(path.read_text().rsplit(")", 1)[1].split()[0] == "T" for path in threads)
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"PING\r\n")
            with pytest.raises(TimeoutError):
                sock.recv(16)
            server.resume()
            sock.settimeout(5)
            assert sock.recv(16) == b"+PONG\r\n"
    finally:
        server.close()


def test_a_terminated_program_stops_its_private_servers_first() -> None:
    # atexit does not run when a process dies of SIGTERM (a CI job cancelled, a pytest
    # run killed); the servers it started must not outlive it.
    script = textwrap.dedent(
        """
        import sys, time
        from polystore.testing import LocalRedisServer
        server = LocalRedisServer(port=None)
        server.start()
        print(server._proc.pid, flush=True)
        time.sleep(60)
        """
    )
    program = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert program.stdout is not None
    server_pid = int(program.stdout.readline())
    try:
        assert _alive(server_pid)
        program.terminate()
        assert program.wait(timeout=20) == -signal.SIGTERM
        deadline = time.monotonic() + 10
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(server_pid)
    finally:
        program.kill()
        program.wait()
        program.stdout.close()
        with contextlib.suppress(OSError):
            os.kill(server_pid, signal.SIGKILL)
