"""Private server processes for integration tests.

Each class here launches one real server (or a small Redis Cluster) as a child
process on a free loopback port, with its data in a private temporary
directory. Stopping and starting again reuses the same port and the same data
directory, so clients reconnect to an unchanged URL and durable writes survive.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from polystore.testing.services import ServiceEndpoint, ServiceUnavailable, free_port

__all__ = [
    "LocalPostgresServer",
    "LocalMongoServer",
    "LocalRedisCluster",
    "LocalRedisServer",
    "fallback_bin_dirs",
    "find_binary",
    "mongo_ready",
    "pg_ready",
    "redis_command",
]

SECANTUS_SERVER = "secantusd-py"
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def fallback_bin_dirs() -> list[Path]:
    """Directories searched after PATH: the running interpreter's and PostgreSQL's.

    Returns:
        The directory of ``sys.executable`` (where a virtualenv installs
        ``secantusd-py``) followed by ``/usr/lib/postgresql/<version>/bin``,
        newest version first.
    """
    pg_dirs = sorted(glob.glob(POSTGRES_BIN_GLOB), key=_version_key, reverse=True)
    return [Path(sys.executable).parent, *(Path(d) for d in pg_dirs)]


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts)


def find_binary(name: str) -> str | None:
    """Find an executable on PATH, then in :func:`fallback_bin_dirs`.

    Args:
        name: The executable name, e.g. ``"redis-server"``.

    Returns:
        The absolute path of the executable, or None if it is not found.
    """
    found = shutil.which(name)
    if found:
        return found
    for directory in fallback_bin_dirs():
        found = shutil.which(name, path=str(directory))
        if found:
            return found
    return None


def redis_command(
    port: int, *args: str, password: str | None = None, timeout: float = 2.0, host: str = "127.0.0.1"
) -> str:
    """Send one command to a Redis server over RESP and return its reply as text.

    Args:
        port: The server's port.
        *args: The command and its arguments.
        password: Sent with ``AUTH`` first when given.
        timeout: Socket timeout in seconds.
        host: The server's address.

    Returns:
        The simple-string, integer or bulk-string reply (``""`` for a nil).

    Raises:
        OSError: The server cannot be reached.
        ServiceUnavailable: The server replied with an error.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        stream = sock.makefile("rb")
        commands = [("AUTH", password)] if password else []
        for command in [*commands, args]:
            payload = b"*%d\r\n" % len(command) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in command
            )
            sock.sendall(payload)
            line = stream.readline().rstrip(b"\r\n").decode()
            if not line:
                raise ConnectionError("connection closed by redis")
            if line[0] == "-":
                raise ServiceUnavailable(f"redis replied {line[1:]!r} to {command[0]}")
            if line[0] == "$":
                size = int(line[1:])
                line = "" if size < 0 else stream.read(size + 2)[:size].decode()
            else:
                line = line[1:]
        return line


def pg_ready(port: int, host: str = "127.0.0.1") -> bool:
    """True when PostgreSQL at host:port accepts a startup packet (is not starting up)."""
    params = b"user\0postgres\0database\0postgres\0\0"
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            kind = sock.recv(1)
            if kind == b"R":
                sock.sendall(b"X\0\0\0\4")
            return kind == b"R"
    except OSError:
        return False


def mongo_ready(port: int, host: str = "127.0.0.1", *, primary: bool = False) -> bool:
    """True when the MongoDB-protocol server at host:port answers ``hello``.

    Args:
        port: The server's port.
        host: The server's address.
        primary: Also require ``isWritablePrimary``.
    """
    try:
        from pymongo import MongoClient
    except ImportError:  # pragma: no cover - pymongo is a test dependency
        return _tcp_ready(port, host)
    client: MongoClient[dict[str, object]] = MongoClient(
        host, port, directConnection=True, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
    )
    try:
        reply = client.admin.command("hello")
        return reply.get("ok") == 1 and (not primary or reply.get("isWritablePrimary") is True)
    except Exception:
        return False
    finally:
        client.close()


def _tcp_ready(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1.0).close()
        return True
    except OSError:
        return False


class _LocalServer(ServiceEndpoint):
    """A server run as a child process in its own process group."""

    provider = "local"
    #: Signal asking the server for a clean, prompt shutdown.
    stop_signal = signal.SIGTERM

    def __init__(self, name: str, *, port: int | None = None, start_timeout: float = 30.0) -> None:
        super().__init__(name)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"polystore-{name}-"))
        self.log_path = self.data_dir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepared = False

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ping(self) -> bool:
        return _tcp_ready(self.port)

    def _prepare(self) -> None:
        """One-time setup before the first start (e.g. ``initdb``)."""

    def _run_as(self) -> pwd.struct_passwd | None:
        return None

    def _identity(self) -> tuple[int | None, int | None, list[int] | None]:
        """``(user, group, extra_groups)`` for :class:`subprocess.Popen`."""
        user = self._run_as()
        return (None, None, None) if user is None else (user.pw_uid, user.pw_gid, [])

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (a no-op if it runs) and wait until it answers a ping."""
        self._check_open()
        if self.is_running():
            return
        if not self._prepared:
            self._prepare()
            self._prepared = True
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            uid, gid, groups = self._identity()
            self._proc = subprocess.Popen(  # noqa: S603
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        deadline = time.monotonic() + self.start_timeout
        while not self._ping():
            if self._proc.poll() is not None:
                raise self._failure(f"exited with code {self._proc.returncode} during startup")
            if time.monotonic() > deadline:
                self._signal_group(signal.SIGKILL)
                self._proc.wait()
                raise self._failure(f"did not answer within {self.start_timeout:.0f}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down cleanly; SIGKILL it if it has not exited within ``timeout``."""
        self._check_open()
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(self.stop_signal)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._reap()

    def kill(self) -> None:
        """Kill the server's whole process group with SIGKILL (a crash, no shutdown)."""
        self._check_open()
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            self._signal_group(signal.SIGKILL)
            self._proc.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _cleanup(self) -> None:
        self._reap()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, what: str) -> ServiceUnavailable:
        argv = " ".join(self._argv())
        return ServiceUnavailable(
            f"{self.name} server on port {self.port} {what}.\ncommand: {argv}\n"
            f"log ({self.log_path}):\n{self.log_tail()}"
        )


class LocalRedisServer(_LocalServer):
    """A private ``redis-server`` with an fsync-always append-only file.

    Args:
        binary: Path of ``redis-server``; found on PATH when omitted.
        extra_args: Further command-line arguments, e.g. ``["--requirepass", "pw"]``.
        name: Endpoint name.
        port: Port to listen on; a free one when omitted.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        name: str = "redis",
        port: int | None = None,
    ) -> None:
        found = binary or find_binary("redis-server")
        if found is None:
            raise ServiceUnavailable("redis-server not found on PATH")
        super().__init__(name, port=port)
        self.binary = found
        self.extra_args = list(extra_args)
        self.password: str | None = None
        if "--requirepass" in self.extra_args:
            self.password = self.extra_args[self.extra_args.index("--requirepass") + 1]

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir),
            *self.extra_args,
        ]  # fmt: skip

    def _ping(self) -> bool:
        try:
            return redis_command(self.port, "PING", password=self.password) == "PONG"
        except (OSError, ServiceUnavailable):
            return False


class LocalPostgresServer(_LocalServer):
    """A private PostgreSQL cluster created with ``initdb`` (trust auth, user ``postgres``).

    When the tests run as root the server runs as the ``postgres`` user if one
    exists, else ``nobody``, because PostgreSQL refuses to run as root.

    Args:
        extra_args: Further ``postgres`` arguments, e.g. ``["-c", "max_connections=50"]``.
        name: Endpoint name.
        port: Port to listen on; a free one when omitted.
    """

    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to leave

    def __init__(self, *, extra_args: Sequence[str] = (), name: str = "postgres", port: int | None = None) -> None:
        initdb, postgres = find_binary("initdb"), find_binary("postgres")
        if initdb is None or postgres is None:
            raise ServiceUnavailable(f"initdb/postgres not found on PATH or in {POSTGRES_BIN_GLOB}")
        super().__init__(name, port=port, start_timeout=60.0)
        sibling = Path(postgres).with_name("initdb")  # keep initdb and postgres of one version
        self.initdb = str(sibling) if sibling.exists() else initdb
        self.binary = postgres
        self.extra_args = list(extra_args)
        user = self._run_as()
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for candidate in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(candidate)
            except KeyError:
                continue
        raise ServiceUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists")

    def _prepare(self) -> None:
        argv = [
            self.initdb, "-D", str(self.data_dir / "pgdata"), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        uid, gid, groups = self._identity()
        result = subprocess.run(  # noqa: S603
            argv, cwd=self.data_dir, capture_output=True, text=True, timeout=120,
            env={**os.environ, "LC_ALL": "C"}, user=uid, group=gid, extra_groups=groups,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceUnavailable(f"initdb failed ({result.returncode}): {' '.join(argv)}\n{result.stderr[-3000:]}")

    def _argv(self) -> list[str]:
        return [
            self.binary, "-D", str(self.data_dir / "pgdata"), "-k", str(self.data_dir),
            "-p", str(self.port), "-h", "127.0.0.1",
            "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
            "-c", "max_connections=200", "-c", "logging_collector=off",
            *self.extra_args,
        ]  # fmt: skip

    def _ping(self) -> bool:
        return pg_ready(self.port)


class LocalMongoServer(_LocalServer):
    """A private ``secantusd-py`` (SecantusDB, a MongoDB-compatible server).

    Data lives in a real WiredTiger directory, and ``--sync-on-commit`` is on,
    so acknowledged writes survive ``kill()``. The server advertises itself as
    the primary of a one-node replica set named ``secantus``; transactions work.

    Args:
        extra_args: Further ``secantusd-py`` arguments.
        name: Endpoint name.
        port: Port to listen on; a free one when omitted.
    """

    def __init__(self, *, extra_args: Sequence[str] = (), name: str = "mongodb", port: int | None = None) -> None:
        found = find_binary(SECANTUS_SERVER)
        if found is None:
            raise ServiceUnavailable(f"{SECANTUS_SERVER} not found next to {sys.executable} or on PATH")
        super().__init__(name, port=port)
        self.binary = found
        self.extra_args = list(extra_args)
        self.config_path = self.data_dir / "secantusd.toml"
        self.config_path.touch()  # an explicit config stops auto-discovery of stray ones

    @property
    def url(self) -> str:
        """``mongodb://127.0.0.1:PORT/?directConnection=true``."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _argv(self) -> list[str]:
        return [
            self.binary, "--config", str(self.config_path), "--host", "127.0.0.1", "--port", str(self.port),
            "--storage-path", str(self.data_dir / "wt"), "--sync-on-commit", *self.extra_args,
        ]  # fmt: skip

    def _ping(self) -> bool:
        return mongo_ready(self.port)


class LocalRedisCluster(ServiceEndpoint):
    """A Redis Cluster of ``masters`` private ``redis-server`` nodes, no replicas.

    Args:
        masters: Number of master nodes (at least 3).
        use_redis_cli: Create the cluster with ``redis-cli --cluster create``;
            None means "if redis-cli is available", False assigns slots with
            ``CLUSTER ADDSLOTSRANGE``/``CLUSTER MEET`` directly.
        node_timeout_ms: ``cluster-node-timeout`` of every node.
        extra_args: Further ``redis-server`` arguments for every node.
    """

    provider = "local"

    def __init__(
        self,
        *,
        masters: int = 3,
        use_redis_cli: bool | None = None,
        node_timeout_ms: int = 5000,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__("redis_cluster")
        self.start_timeout = 30.0
        self.nodes: list[LocalRedisServer] = []
        try:
            for index in range(masters):
                args = [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(free_port()), "--cluster-node-timeout", str(node_timeout_ms),
                    *extra_args,
                ]  # fmt: skip
                self.nodes.append(LocalRedisServer(name=f"redis-cluster-{index}", extra_args=args))
        except BaseException:
            self.close()
            raise
        cli = find_binary("redis-cli")
        self.redis_cli = cli if use_redis_cli is not False else None
        if use_redis_cli and cli is None:
            raise ServiceUnavailable("redis-cli not found on PATH")
        self._created = False

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` of the first node (a seed for cluster clients)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def port(self) -> int:
        """Port of the first node."""
        return self.nodes[0].port

    def is_running(self) -> bool:
        """Whether every node process is alive."""
        return all(node.is_running() for node in self.nodes)

    def start(self) -> None:
        """Start every node, create the cluster on first start, and wait for ``cluster_state:ok``."""
        self._check_open()
        for node in self.nodes:
            node.start()
        if not self._created:
            self._create()
            self._created = True
        self.wait_ok()

    def stop(self) -> None:
        """Shut every node down cleanly."""
        self._check_open()
        for node in self.nodes:
            node.stop()

    def kill(self) -> None:
        """SIGKILL every node."""
        self._check_open()
        for node in self.nodes:
            node.kill()

    def _cleanup(self) -> None:
        for node in self.nodes:
            node.close()

    def cluster_info(self, node: int = 0) -> dict[str, str]:
        """``CLUSTER INFO`` of one node, as a dict."""
        text = redis_command(self.nodes[node].port, "CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def wait_ok(self, timeout: float | None = None) -> None:
        """Wait until every running node reports ``cluster_state:ok``.

        Raises:
            ServiceUnavailable: The cluster is not ok within the timeout.
        """
        deadline = time.monotonic() + (timeout or self.start_timeout)
        states: list[str] = []
        while time.monotonic() < deadline:
            try:
                states = [self.cluster_info(i).get("cluster_state", "?") for i in range(len(self.nodes))]
            except (OSError, ServiceUnavailable) as exc:
                states = [repr(exc)]
            if states and all(state == "ok" for state in states):
                return
            time.sleep(0.1)
        raise ServiceUnavailable(f"redis cluster not ok (states {states}); node 0 log:\n{self.nodes[0].log_tail()}")

    def _create(self) -> None:
        ports = [node.port for node in self.nodes]
        if self.redis_cli is not None:
            argv = [self.redis_cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
            argv += ["--cluster-replicas", "0", "--cluster-yes"]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)  # noqa: S603
            if result.returncode != 0:
                raise ServiceUnavailable(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
            return
        total = 16384
        for index, node in enumerate(self.nodes):
            first, last = index * total // len(ports), (index + 1) * total // len(ports) - 1
            redis_command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
            redis_command(node.port, "CLUSTER", "SET-CONFIG-EPOCH", str(index + 1))
        for node in self.nodes[1:]:
            bus = node.extra_args[node.extra_args.index("--cluster-port") + 1]
            redis_command(ports[0], "CLUSTER", "MEET", "127.0.0.1", str(node.port), bus)
