"""Server launchers behind :func:`polystore.testing.services.resolve_service`.

The local classes run one real server (or a small Redis Cluster) as a child
process in its own process group, on a free loopback port, with its data in a
private temporary directory. :class:`DockerEndpoint` runs it in a container.
Stopping and starting again reuses the same port and the same data, so clients
reconnect to an unchanged URL and durable writes survive.
"""

from __future__ import annotations

import contextlib
import glob
import os
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
from typing import Any

from polystore.testing._endpoint import ServiceEndpoint, ServiceUnavailable, free_port
from polystore.testing._processes import descendants as _descendants
from polystore.testing._processes import freeze, signal_tree

__all__ = [
    "LocalMongoServer",
    "LocalPostgresServer",
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
        ``secantusd-py``), then ``/usr/lib/postgresql/<version>/bin``, newest first.
    """
    pg_dirs = sorted(glob.glob(POSTGRES_BIN_GLOB), key=_version_key, reverse=True)
    return [Path(sys.executable).parent, *(Path(d) for d in pg_dirs)]


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in Path(path).parent.name.split("."))


def find_binary(name: str) -> str | None:
    """Find an executable on PATH, then in :func:`fallback_bin_dirs`.

    Args:
        name: The executable name, e.g. ``"redis-server"``.

    Returns:
        The path of the executable, or None if it is not found.
    """
    for path in [None, *(str(d) for d in fallback_bin_dirs())]:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def redis_command(
    port: int,
    *args: str,
    password: str | None = None,
    timeout: float = 2.0,
    host: str = "127.0.0.1",
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
    sock = socket.create_connection((host, port), timeout=timeout)
    with sock, sock.makefile("rb") as stream:
        line = ""
        for command in ([("AUTH", password)] if password else []) + [args]:
            sock.sendall(
                b"*%d\r\n" % len(command)
                + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in command)
            )
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
    """Whether PostgreSQL at host:port accepts a startup packet (is not starting up)."""
    params = b"user\0postgres\0database\0postgres\0\0"
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            kind = sock.recv(1)  # "R": authentication step; "E": e.g. "starting up"
            if kind == b"R":
                sock.sendall(b"X\0\0\0\4")
    except OSError:
        return False
    return kind == b"R"


def mongo_ready(port: int, host: str = "127.0.0.1", *, primary: bool = False) -> bool:
    """Whether the MongoDB-protocol server at host:port answers ``hello``.

    Args:
        port: The server's port.
        host: The server's address.
        primary: Also require ``isWritablePrimary``.
    """
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, Any]] = MongoClient(
        host, port, directConnection=True, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
    )
    try:
        reply = client.admin.command("hello")
    except PyMongoError:
        return False
    finally:
        client.close()
    return reply.get("ok") == 1 and (not primary or reply.get("isWritablePrimary") is True)


class _LocalServer(ServiceEndpoint):
    """A server run as a child process in its own process group."""

    provider = "local"
    stop_signal = signal.SIGTERM  # asks for a clean, prompt shutdown

    def __init__(self, name: str, *, port: int | None, start_timeout: float = 30.0) -> None:
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
        raise NotImplementedError

    def _prepare(self) -> None:
        """One-time setup before the first start (e.g. ``initdb``)."""

    def _identity(self) -> tuple[int | None, int | None, list[int] | None]:
        """``(user, group, extra_groups)`` to run the server as; all None for "as we are"."""
        return None, None, None

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (a no-op if it runs) and wait until it answers a ping.

        Raises:
            ServiceUnavailable: It exited or did not answer within ``start_timeout``.
        """
        self._check_open()
        if self.is_running():
            return
        if not self._prepared:
            self._prepare()
            self._prepared = True
        uid, gid, groups = self._identity()
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
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
                self._reap()
                raise self._failure(f"exited with code {self._proc.returncode} during startup")
            if time.monotonic() > deadline:
                self._reap()
                raise self._failure(f"did not answer within {self.start_timeout:.0f}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down cleanly; SIGKILL it if it has not exited within ``timeout``."""
        self._check_open()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server and every process it started (a crash: no shutdown at all)."""
        self._check_open()
        self._reap()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its connections but answers nothing.

        Returns once every thread of every server process is stopped, processes forked
        while freezing included (see :func:`~polystore.testing._processes.freeze`).
        """
        self._check_open()
        if self._proc is not None and self._proc.poll() is None:
            freeze(self._proc.pid)

    def resume(self) -> None:
        """Thaw a server frozen by :meth:`pause` (SIGCONT)."""
        self._check_open()
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, signum: signal.Signals) -> list[int]:
        """Signal the server and every descendant; return the pids signalled."""
        if self._proc is None or self._proc.poll() is not None:
            return []
        return signal_tree(self._proc.pid, signum)

    def _reap(self) -> None:
        """SIGKILL whatever is left of the server's processes and collect the exit status."""
        if self._proc is not None:
            children = _descendants(self._proc.pid) if self._proc.poll() is None else []
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            for pid in children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            self._proc.wait()

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
        return ServiceUnavailable(
            f"{self.name} server on port {self.port} {what}.\n"
            f"command: {' '.join(self._argv())}\nlog ({self.log_path}):\n{self.log_tail()}"
        )


class LocalRedisServer(_LocalServer):
    """A private ``redis-server`` with an append-only file fsynced on every write.

    Args:
        extra_args: Further arguments, e.g. ``["--requirepass", "pw"]``.
        name: Endpoint name.
        port: Port to listen on; a free one when omitted.
    """

    def __init__(
        self, *, extra_args: Sequence[str] = (), name: str = "redis", port: int | None = None
    ) -> None:
        binary = find_binary("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server not found on PATH")
        super().__init__(name, port=port)
        self.binary = binary
        self.extra_args = list(extra_args)
        self.password = _option(self.extra_args, "--requirepass")

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        return [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir),
            *self.extra_args,
        ]  # fmt: skip

    def _ping(self) -> bool:
        try:
            return redis_command(self.port, "PING", password=self.password) == "PONG"
        except (OSError, ServiceUnavailable):  # refused, or e.g. "LOADING"
            return False


def _option(args: Sequence[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


class LocalPostgresServer(_LocalServer):
    """A private PostgreSQL cluster made by ``initdb`` (trust auth, superuser ``postgres``).

    PostgreSQL refuses to run as root, so under root the server (and ``initdb``)
    run as the ``postgres`` user if it exists, else as ``nobody``.

    Args:
        extra_args: Further ``postgres`` arguments, e.g. ``["-c", "max_connections=50"]``.
        name: Endpoint name.
        port: Port to listen on; a free one when omitted.
    """

    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to disconnect

    def __init__(
        self, *, extra_args: Sequence[str] = (), name: str = "postgres", port: int | None = None
    ) -> None:
        postgres = find_binary("postgres")
        initdb = find_binary("initdb")
        if postgres is None or initdb is None:
            raise ServiceUnavailable(f"initdb/postgres not found on PATH or in {POSTGRES_BIN_GLOB}")
        super().__init__(name, port=port, start_timeout=60.0)
        sibling = Path(postgres).with_name("initdb")  # initdb of the same version as postgres
        self.initdb = str(sibling) if sibling.exists() else initdb
        self.binary = postgres
        self.extra_args = list(extra_args)
        uid, gid, _ = self._identity()
        if uid is not None and gid is not None:
            os.chown(self.data_dir, uid, gid)

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _identity(self) -> tuple[int | None, int | None, list[int] | None]:
        if os.geteuid() != 0:
            return None, None, None
        import pwd  # Unix only: imported here so that the kit imports everywhere

        users = {entry.pw_name: entry for entry in pwd.getpwall()}
        user = users.get("postgres") or users.get("nobody")
        if user is None:
            raise ServiceUnavailable("running as root, and no 'postgres' or 'nobody' user exists")
        return user.pw_uid, user.pw_gid, []

    def _prepare(self) -> None:
        argv = [
            self.initdb, "-D", str(self.data_dir / "pgdata"), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        uid, gid, groups = self._identity()
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, cwd=self.data_dir, capture_output=True, text=True, timeout=120,
            env={**os.environ, "LC_ALL": "C"}, user=uid, group=gid, extra_groups=groups,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceUnavailable(
                f"initdb failed ({result.returncode}): {' '.join(argv)}\n{result.stderr[-3000:]}"
            )

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

    Data lives in a real WiredTiger directory and ``--sync-on-commit`` is on, so
    acknowledged writes survive :meth:`kill`. The server advertises itself as the
    primary of a one-node replica set named ``secantus``; transactions work.

    Args:
        extra_args: Further ``secantusd-py`` arguments.
        name: Endpoint name.
        port: Port to listen on; a free one when omitted.
    """

    def __init__(
        self, *, extra_args: Sequence[str] = (), name: str = "mongodb", port: int | None = None
    ) -> None:
        binary = find_binary(SECANTUS_SERVER)
        if binary is None:
            raise ServiceUnavailable(
                f"{SECANTUS_SERVER} not found next to {sys.executable} or on PATH"
            )
        super().__init__(name, port=port)
        self.binary = binary
        self.extra_args = list(extra_args)
        self.config_path = self.data_dir / "secantusd.toml"
        self.config_path.touch()  # an explicit (empty) config disables config auto-discovery

    @property
    def url(self) -> str:
        """``mongodb://127.0.0.1:PORT/?directConnection=true``."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _argv(self) -> list[str]:
        return [
            self.binary, "--config", str(self.config_path), "--host", "127.0.0.1",
            "--port", str(self.port), "--storage-path", str(self.data_dir / "wt"),
            "--sync-on-commit", *self.extra_args,
        ]  # fmt: skip

    def _ping(self) -> bool:
        return mongo_ready(self.port)
