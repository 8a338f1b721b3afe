"""A private Redis primary, one replica and three Sentinels, for failover tests.

The Sentinels monitor the primary under the service name ``polystore`` with a quorum of
two and declare it down after one second without an answer, so killing the primary
promotes the replica within a few seconds. ``url`` is a ``redis+sentinel://`` URL that
lists the three Sentinels.
"""

from __future__ import annotations

import time

from polystore.testing._endpoint import ServiceEndpoint, ServiceUnavailable
from polystore.testing._servers import LocalRedisServer, redis_command

__all__ = ["SERVICE", "LocalRedisSentinel", "LocalRedisSentinelSet"]

SERVICE = "polystore"


class LocalRedisSentinel(LocalRedisServer):
    """One ``redis-server --sentinel`` watching ``primary_port``."""

    def __init__(self, primary_port: int, *, name: str) -> None:
        super().__init__(name=name)
        self.primary_port = primary_port
        self.config_path = self.data_dir / "sentinel.conf"

    def _prepare(self) -> None:
        # Sentinel rewrites its file as it learns the topology: it must be its own.
        self.config_path.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.data_dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )

    def _argv(self) -> list[str]:
        return [self.binary, str(self.config_path), "--sentinel"]


class LocalRedisSentinelSet(ServiceEndpoint):
    """A primary, a replica of it and three Sentinels, each on a free port.

    Attributes:
        primary: The server that is the primary at start.
        replica: Its replica (the primary after a failover).
        sentinels: The three Sentinels.
    """

    provider = "local"

    def __init__(self, *, name: str = "redis-sentinel") -> None:
        super().__init__(name)
        self.primary = LocalRedisServer(name=f"{name}-primary")
        self.replica = LocalRedisServer(
            name=f"{name}-replica",
            extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)],
        )
        self.sentinels = [
            LocalRedisSentinel(self.primary.port, name=f"{name}-sentinel{i}") for i in range(3)
        ]

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/polystore/0``."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int:
        """The port of the server the Sentinels name as primary now."""
        for sentinel in self.sentinels:
            if sentinel.is_running():
                try:
                    reply = _addr(sentinel.port)
                except (OSError, ServiceUnavailable):
                    continue
                return reply
        raise ServiceUnavailable("no Sentinel answers")

    def start(self) -> None:
        """Start the servers, wait for the replica to sync, then start the Sentinels."""
        self._check_open()
        self.primary.start()
        self.replica.start()
        deadline = time.monotonic() + 30
        while "master_link_status:up" not in _info(self.replica.port, "replication"):
            if time.monotonic() > deadline:
                raise ServiceUnavailable("the replica did not sync with the primary in 30 s")
            time.sleep(0.05)
        for sentinel in self.sentinels:
            sentinel.start()

    def stop(self) -> None:
        """Stop every process."""
        for server in [*self.sentinels, self.replica, self.primary]:
            server.stop()

    def kill(self) -> None:
        """Kill every process."""
        for server in [*self.sentinels, self.replica, self.primary]:
            server.kill()

    def _cleanup(self) -> None:
        for server in [*self.sentinels, self.replica, self.primary]:
            server.close()


def _info(port: int, section: str) -> str:
    try:
        return redis_command(port, "INFO", section)
    except (OSError, ServiceUnavailable):
        return ""


def _addr(port: int) -> int:
    """The primary's port, from ``SENTINEL get-master-addr-by-name`` (an array reply)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        command = ["SENTINEL", "get-master-addr-by-name", SERVICE]
        sock.sendall(
            b"*%d\r\n" % len(command)
            + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in command)
        )
        data = b""
        while data.count(b"\r\n") < 5:  # *2, $len, host, $len, port
            chunk = sock.recv(4096)
            if not chunk:
                raise ServiceUnavailable("the Sentinel closed the connection")
            data += chunk
    lines = data.split(b"\r\n")
    if not lines[0].startswith(b"*2"):
        raise ServiceUnavailable(f"unexpected Sentinel reply {lines[0]!r}")
    return int(lines[4])
