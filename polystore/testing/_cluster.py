"""A private Redis Cluster of local ``redis-server`` nodes, for cluster tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

from polystore.testing._endpoint import ServiceEndpoint, ServiceUnavailable, free_port
from polystore.testing._servers import LocalRedisServer, _option, find_binary, redis_command

__all__ = ["LocalRedisCluster"]


class LocalRedisCluster(ServiceEndpoint):
    """A Redis Cluster of private ``redis-server`` nodes, all masters, no replicas.

    Attributes:
        nodes: The node servers; each can be stopped, killed and started on its own.

    Args:
        masters: Number of master nodes (at least 3).
        use_redis_cli: Create the cluster with ``redis-cli --cluster create``;
            None means "when redis-cli is on PATH"; False assigns slots with
            ``CLUSTER ADDSLOTSRANGE`` and joins nodes with ``CLUSTER MEET``.
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
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        cli = find_binary("redis-cli") if use_redis_cli is not False else None
        if use_redis_cli and cli is None:
            raise ServiceUnavailable("redis-cli not found on PATH")
        super().__init__("redis_cluster")
        self.redis_cli = cli
        self.start_timeout = 30.0
        self.nodes: list[LocalRedisServer] = []
        self._created = False
        try:
            for index in range(masters):
                args = [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(free_port()),
                    "--cluster-node-timeout", str(node_timeout_ms), *extra_args,
                ]  # fmt: skip
                self.nodes.append(LocalRedisServer(name=f"redis_cluster{index}", extra_args=args))
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` of the first node (a seed for cluster clients)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def is_running(self) -> bool:
        """Whether every node process is alive."""
        return all(node.is_running() for node in self.nodes)

    def start(self) -> None:
        """Start every node, create the cluster the first time, wait for ``cluster_state:ok``."""
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
        """Wait until every node reports ``cluster_state:ok``.

        Args:
            timeout: Seconds to wait; ``start_timeout`` when omitted.

        Raises:
            ServiceUnavailable: The cluster is not ok in time.
        """
        deadline = time.monotonic() + (timeout or self.start_timeout)
        states: list[str] = []
        while time.monotonic() < deadline:
            try:
                states = [self.cluster_info(i)["cluster_state"] for i in range(len(self.nodes))]
            except (OSError, KeyError, ServiceUnavailable) as exc:
                states = [repr(exc)]
            if all(state == "ok" for state in states):
                return
            time.sleep(0.1)
        raise ServiceUnavailable(
            f"redis cluster not ok (states {states}); node 0 log:\n{self.nodes[0].log_tail()}"
        )

    def _create(self) -> None:
        ports = [node.port for node in self.nodes]
        if self.redis_cli is not None:
            argv = [self.redis_cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
            argv += ["--cluster-replicas", "0", "--cluster-yes"]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)  # noqa: S603
            if result.returncode != 0:
                raise ServiceUnavailable(
                    f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}"
                )
            return
        for index, node in enumerate(self.nodes):
            first, last = index * 16384 // len(ports), (index + 1) * 16384 // len(ports) - 1
            redis_command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
            redis_command(node.port, "CLUSTER", "SET-CONFIG-EPOCH", str(index + 1))
        for node in self.nodes[1:]:
            bus = _option(node.extra_args, "--cluster-port") or str(node.port + 10000)
            redis_command(ports[0], "CLUSTER", "MEET", "127.0.0.1", str(node.port), bus)
