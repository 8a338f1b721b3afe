"""A private PostgreSQL primary with a streaming standby, for scale-out and failover tests.

The primary is a :class:`~polystore.testing.LocalPostgresServer` with WAL kept for
replication; the standby is copied from it by ``pg_basebackup -R`` (which writes the
``primary_conninfo`` and ``standby.signal`` that make it follow the primary) and runs on a
port of its own. Each member is a server of its own with ``start()``, ``stop()``,
``kill()``, ``pause()`` and ``resume()``; :meth:`LocalPostgresStandby.promote` turns the
standby into a primary, as an operator does after losing the primary.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from polystore.testing._endpoint import ServiceEndpoint, ServiceUnavailable
from polystore.testing._servers import LocalPostgresServer, find_binary

__all__ = ["LocalPostgresReplicaSet", "LocalPostgresStandby"]

_PRIMARY_ARGS = (
    "-c", "wal_level=replica", "-c", "max_wal_senders=10", "-c", "wal_keep_size=256MB",
    "-c", "hot_standby=on", "-c", "wal_sender_timeout=5s",
)  # fmt: skip


class LocalPostgresStandby(LocalPostgresServer):
    """A hot standby of ``primary``, made by ``pg_basebackup -R`` on its first start.

    Args:
        primary: The server to copy and follow; it must be running at the first start.
        name: Endpoint name.
        port: Port to listen on; a free one when omitted.
    """

    def __init__(
        self,
        primary: LocalPostgresServer,
        *,
        name: str = "postgres-standby",
        port: int | None = None,
    ) -> None:
        super().__init__(extra_args=("-c", "hot_standby=on"), name=name, port=port)
        self.primary = primary

    def _tool(self, name: str) -> str:
        # The same version as the server: next to the real binary (PATH may hold a link).
        tool = Path(self.binary).resolve().with_name(name)
        if tool.exists():
            return str(tool)
        found = find_binary(name)
        if found is None:
            raise ServiceUnavailable(f"{name} not found next to {self.binary} or on PATH")
        return found

    def _run(self, argv: list[str], what: str) -> None:
        uid, gid, groups = self._identity()
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, cwd=self.data_dir, capture_output=True, text=True, timeout=120,
            env={**os.environ, "LC_ALL": "C"}, user=uid, group=gid, extra_groups=groups,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceUnavailable(
                f"{what} failed ({result.returncode}): {' '.join(argv)}\n{result.stderr[-3000:]}"
            )

    def _prepare(self) -> None:
        self._run(
            [
                self._tool("pg_basebackup"), "-D", str(self.data_dir / "pgdata"),
                "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                "-R", "-X", "stream", "-c", "fast", "--no-sync",
            ],
            "pg_basebackup",
        )  # fmt: skip

    def promote(self, timeout: float = 60.0) -> None:
        """Make this standby a primary (``pg_ctl promote``) and wait until it accepts writes.

        Raises:
            ServiceUnavailable: It is not running, or did not finish promoting in time.
        """
        self._check_open()
        if not self.is_running():
            raise ServiceUnavailable(f"{self.name} is not running; start it before promote()")
        self._run(
            [self._tool("pg_ctl"), "promote", "-w", "-t", str(int(timeout)),
             "-D", str(self.data_dir / "pgdata")],
            "pg_ctl promote",
        )  # fmt: skip
        signal_file = self.data_dir / "pgdata" / "standby.signal"
        deadline = time.monotonic() + timeout
        while signal_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def wal_lag_bytes(self) -> int:
        """How far this standby's replay is behind the primary's WAL, in bytes (``-1``
        when it cannot be measured: either server down)."""
        try:
            current = self.query("SELECT pg_current_wal_lsn()", port=self.primary.port)
            replayed = self.query("SELECT pg_last_wal_replay_lsn()")
        except ServiceUnavailable:
            return -1
        return max(0, _lsn(current) - _lsn(replayed))

    def query(self, statement: str, *, port: int | None = None) -> str:
        """Run one SQL statement with ``psql`` on this server (or on ``port``); its output.

        Raises:
            ServiceUnavailable: ``psql`` failed, e.g. the server is down.
        """
        argv = [
            self._tool("psql"), "-h", "127.0.0.1", "-p", str(port or self.port),
            "-U", "postgres", "-d", "postgres", "-XAtqc", statement,
        ]  # fmt: skip
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, capture_output=True, text=True, timeout=10, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceUnavailable(f"psql timed out: {statement}") from exc
        if result.returncode != 0:
            raise ServiceUnavailable(f"psql failed: {statement}: {result.stderr.strip()}")
        return result.stdout.strip()


def _lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


class LocalPostgresReplicaSet(ServiceEndpoint):
    """A private primary and one streaming standby, both started by :meth:`start`.

    ``url`` is the primary's; ``standby_url`` the standby's; ``multi_host_url`` lists both
    with ``target_session_attrs=read-write``, so a client configured with it finds whichever
    is the primary (after :meth:`LocalPostgresStandby.promote`, the former standby).

    Attributes:
        primary: The primary server.
        standby: The standby server.
    """

    provider = "local"

    def __init__(self, *, name: str = "postgres-replicas") -> None:
        super().__init__(name)
        self.primary = LocalPostgresServer(extra_args=_PRIMARY_ARGS, name=f"{name}-primary")
        self.standby = LocalPostgresStandby(self.primary, name=f"{name}-standby")

    @property
    def url(self) -> str:
        """The primary's URL."""
        return self.primary.url

    @property
    def standby_url(self) -> str:
        """The standby's URL."""
        return self.standby.url

    @property
    def multi_host_url(self) -> str:
        """Both servers in one URL, choosing the one that accepts writes."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
            "/postgres?target_session_attrs=read-write"
        )

    def start(self) -> None:
        """Start the primary, then the standby (copying the primary on the first start)."""
        self._check_open()
        self.primary.start()
        self.standby.start()

    def stop(self) -> None:
        """Stop the standby, then the primary."""
        self.standby.stop()
        self.primary.stop()

    def kill(self) -> None:
        """Kill both servers."""
        self.standby.kill()
        self.primary.kill()

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Wait until the standby has replayed all the WAL the primary has written.

        Raises:
            ServiceUnavailable: It is still behind after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self.standby.wal_lag_bytes() != 0:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"{self.standby.name} did not catch up in {timeout}s")
            time.sleep(0.02)

    def _cleanup(self) -> None:
        self.standby.close()
        self.primary.close()
