"""Servers in Docker containers through testcontainers, when a Docker engine answers."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Sequence
from typing import Any

from polystore.testing._endpoint import ServiceEndpoint, ServiceUnavailable, free_port
from polystore.testing._servers import _option, mongo_ready, pg_ready, redis_command

__all__ = ["DOCKER_IMAGES", "DockerEndpoint"]

DOCKER_IMAGES = {"redis": "redis:7", "postgres": "postgres:16", "mongodb": "mongo:7"}
_CONTAINER_PORTS = {"redis": 6379, "postgres": 5432, "mongodb": 27017}


def _testcontainers(module: str) -> Any:
    try:
        return importlib.import_module(f"testcontainers.community.{module}")
    except ImportError:  # testcontainers < 4.10 has no "community" package
        return importlib.import_module(f"testcontainers.{module}")


class DockerEndpoint(ServiceEndpoint):
    """A server in a Docker container started with testcontainers.

    The container port is bound to a fixed free host port, so the URL survives
    stop/start; the container's filesystem (and so its data) survives too. The
    image is ``POLYSTORE_TEST_<NAME>_IMAGE`` if set, else redis:7, postgres:16
    or mongo:7 (run as a one-node replica set ``rs0``, for transactions).

    Args:
        name: ``"redis"``, ``"postgres"`` or ``"mongodb"``.
        extra_args: Further server arguments.
        start_timeout: Seconds to wait for the server after a start.
    """

    provider = "docker"

    def __init__(
        self, name: str, *, extra_args: Sequence[str] = (), start_timeout: float = 120.0
    ) -> None:
        if name not in DOCKER_IMAGES:
            raise ServiceUnavailable(f"no Docker image is configured for {name!r}")
        super().__init__(name)
        self.start_timeout = start_timeout
        self.port = free_port()
        self.host = "127.0.0.1"
        self.password = _option(extra_args, "--requirepass") if name == "redis" else None
        image = os.environ.get(f"POLYSTORE_TEST_{name.upper()}_IMAGE", DOCKER_IMAGES[name])
        self._container: Any = None
        try:
            self._container = self._make_container(image, list(extra_args))
            self._container.start()
            self.host = self._container.get_container_host_ip()
            if name == "mongodb":
                self._initiate_replica_set()
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _make_container(self, image: str, args: list[str]) -> Any:
        container: Any
        if self.name == "redis":
            container = _testcontainers("redis").RedisContainer(image, password=self.password)
            command = ["redis-server", "--appendonly", "yes", "--appendfsync", "always", *args]
        elif self.name == "postgres":
            credentials = {"username": "postgres", "password": "postgres", "dbname": "postgres"}
            container = _testcontainers("postgres").PostgresContainer(
                image, driver=None, **credentials
            )
            command = ["postgres", "-c", "fsync=on", "-c", "max_connections=200", *args]
        else:
            # The generic container, not MongoDbContainer: that one creates a root user,
            # which a --replSet server would refuse without a keyfile.
            container = importlib.import_module("testcontainers.core.container").DockerContainer(
                image
            )
            command = ["--replSet", "rs0", "--bind_ip_all", *args]
        container.with_command(command)
        container.with_bind_ports(_CONTAINER_PORTS[self.name], self.port)
        return container

    @property
    def url(self) -> str:
        """The driver URL of the container's server on its bound host port."""
        where = f"{self.host}:{self.port}"
        if self.name == "redis":
            return f"redis://{':' + self.password + '@' if self.password else ''}{where}/0"
        if self.name == "postgres":
            return f"postgresql://postgres:postgres@{where}/postgres"
        return f"mongodb://{where}/?directConnection=true"

    def _initiate_replica_set(self) -> None:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        config = {"_id": "rs0", "members": [{"_id": 0, "host": "127.0.0.1:27017"}]}
        deadline = time.monotonic() + self.start_timeout
        client: MongoClient[dict[str, Any]] = MongoClient(self.url, serverSelectionTimeoutMS=2000)
        with client:
            while True:
                try:
                    client.admin.command("replSetInitiate", config)
                except PyMongoError as exc:  # noqa: PERF203 - polling until mongod is up
                    if "already initialized" in str(exc):
                        return
                    if time.monotonic() > deadline:
                        raise ServiceUnavailable(f"replSetInitiate failed: {exc}") from exc
                    time.sleep(0.2)
                else:
                    return

    def _ready(self) -> bool:
        if self.name == "redis":
            try:
                reply = redis_command(self.port, "PING", password=self.password, host=self.host)
            except (OSError, ServiceUnavailable):
                return False
            return reply == "PONG"
        if self.name == "postgres":
            return pg_ready(self.port, host=self.host)
        return mongo_ready(self.port, host=self.host, primary=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self._ready():
            if time.monotonic() > deadline:
                out = b"".join(part or b"" for part in self._container.get_logs())
                tail = "\n".join(out.decode(errors="replace").splitlines()[-30:])
                raise ServiceUnavailable(
                    f"{self.name} container did not answer within {self.start_timeout:.0f}s; "
                    f"log:\n{tail}"
                )
            time.sleep(0.1)

    def start(self) -> None:
        """Start the stopped container again and wait until the server answers."""
        self._check_open()
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status != "running":
            wrapped.start()
        self._wait_ready()

    def stop(self) -> None:
        """Stop the container (SIGTERM, then SIGKILL after 15 s)."""
        self._check_open()
        self._container.get_wrapped_container().stop(timeout=15)

    def kill(self) -> None:
        """SIGKILL the container's main process."""
        self._check_open()
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status == "running":
            wrapped.kill()

    def _cleanup(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # best effort: the engine may be gone already
                self._container.stop()
