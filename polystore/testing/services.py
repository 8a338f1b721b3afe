"""Real-server endpoints for integration tests.

:func:`resolve_service` gives a running server for ``"redis"``, ``"postgres"``,
``"mongodb"`` or ``"redis_cluster"``, from the first provider that works:

1. an explicit URL in ``POLYSTORE_TEST_<NAME>_URL`` (no fault control);
2. testcontainers, when a Docker engine answers (``POLYSTORE_TEST_DOCKER=0``
   disables this provider);
3. a private server process on a free loopback port, from binaries on PATH
   (``redis-server``; ``initdb``/``postgres``; ``secantusd-py`` from the
   ``SecantusDB`` package);
4. otherwise :class:`ServiceUnavailable`, whose message says how to provide one.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from polystore.testing import _docker
from polystore.testing._cluster import LocalRedisCluster
from polystore.testing._endpoint import (
    FaultControlError,
    ServiceEndpoint,
    ServiceUnavailable,
    free_port,
)
from polystore.testing._servers import LocalMongoServer, LocalPostgresServer, LocalRedisServer

__all__ = [
    "ALLOW_SKIP_ENV",
    "DOCKER_ENV",
    "SECANTUS_REQUIREMENT",
    "SERVICE_NAMES",
    "FaultControlError",
    "ServiceEndpoint",
    "ServiceUnavailable",
    "UrlEndpoint",
    "docker_available",
    "free_port",
    "resolve_service",
    "unavailable_message",
    "url_env",
]

SERVICE_NAMES = ("redis", "postgres", "mongodb", "redis_cluster")
ALLOW_SKIP_ENV = "POLYSTORE_TEST_ALLOW_SKIP"
DOCKER_ENV = "POLYSTORE_TEST_DOCKER"
SECANTUS_REQUIREMENT = "SecantusDB==0.7.0b3"
DOCKER_SOCKET = "/var/run/docker.sock"

_EXAMPLE_URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mongodb": "mongodb://127.0.0.1:27017/?directConnection=true",
    "redis_cluster": "redis://127.0.0.1:7000",
}
_INSTALL_HINTS = {
    "redis": "install redis-server on PATH (e.g. `apt-get install redis-server`)",
    "postgres": "install PostgreSQL so that `initdb` and `postgres` are on PATH or in "
    "/usr/lib/postgresql/<version>/bin (e.g. `apt-get install postgresql`)",
    "mongodb": f"`pip install {SECANTUS_REQUIREMENT}` (provides the `secantusd-py` server)",
    "redis_cluster": "install redis-server and redis-cli on PATH "
    "(e.g. `apt-get install redis-server`)",
}


def url_env(name: str) -> str:
    """The environment variable giving a URL for ``name``, e.g. ``POLYSTORE_TEST_REDIS_URL``."""
    return f"POLYSTORE_TEST_{_check_name(name).upper()}_URL"


def _check_name(name: str) -> str:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; expected one of {SERVICE_NAMES}")
    return name


class UrlEndpoint(ServiceEndpoint):
    """A server given by URL (``POLYSTORE_TEST_<NAME>_URL``); it cannot be stopped or killed.

    Args:
        name: Service name.
        url: The driver URL.
    """

    provider = "url"

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name)
        self._url = url

    @property
    def url(self) -> str:
        """The URL as given."""
        return self._url

    def _no_fault_control(self, action: str) -> FaultControlError:
        return FaultControlError(
            f"cannot {action} {self.name}: fault control needs a private server, but this one "
            f"comes from {url_env(self.name)}; unset it to let the tests start their own server"
        )

    def _cleanup(self) -> None:
        """Nothing to release: the server belongs to someone else."""

    def start(self) -> None:
        """Raises :class:`FaultControlError`."""
        raise self._no_fault_control("start")

    def stop(self) -> None:
        """Raises :class:`FaultControlError`."""
        raise self._no_fault_control("stop")

    def kill(self) -> None:
        """Raises :class:`FaultControlError`."""
        raise self._no_fault_control("kill")

    def restart(self) -> None:
        """Raises :class:`FaultControlError`."""
        raise self._no_fault_control("restart")


def docker_available(timeout: float = 3.0) -> bool:
    """Whether a Docker engine answers a ping and testcontainers is installed.

    Cheap when there is no engine: without ``DOCKER_HOST`` and without
    ``/var/run/docker.sock`` nothing is imported or contacted.

    Args:
        timeout: Seconds to wait for the engine's ping.

    Returns:
        True if testcontainers can be used; False if ``POLYSTORE_TEST_DOCKER`` is
        ``0``/``false``/``no``/``off``, no engine is configured, or it does not answer.
    """
    if os.environ.get(DOCKER_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not os.environ.get("DOCKER_HOST") and not os.path.exists(DOCKER_SOCKET):
        return False
    try:
        docker: Any = importlib.import_module("docker")
        importlib.import_module("testcontainers.core.container")
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False


def unavailable_message(name: str, reasons: Sequence[str] = ()) -> str:
    """The message explaining how to provide a ``name`` server for the tests.

    Args:
        name: Service name.
        reasons: Why each provider was not usable.

    Returns:
        A multi-line message naming the env var, Docker, and the install hint.
    """
    lines = [
        f"No {name} server is available for the integration tests. Provide one of:",
        f"  - set {url_env(name)}={_EXAMPLE_URLS[name]} "
        "(an existing server; fault tests then cannot run)",
        "  - start a Docker engine (with the `docker` and `testcontainers` packages installed)",
        f"  - {_INSTALL_HINTS[name]}",
        f"To skip these tests instead of failing, set {ALLOW_SKIP_ENV}=1 "
        "or pass --polystore-allow-skip.",
    ]
    if reasons:
        lines.append("Tried: " + "; ".join(reasons))
    return "\n".join(lines)


def _local_endpoint(name: str, extra_args: Sequence[str] = ()) -> ServiceEndpoint:
    """A not yet started local server for ``name``.

    Raises:
        ServiceUnavailable: The server's binaries are not installed.
    """
    if name == "redis":
        return LocalRedisServer(extra_args=extra_args)
    if name == "postgres":
        return LocalPostgresServer(extra_args=extra_args)
    if name == "mongodb":
        return LocalMongoServer(extra_args=extra_args)
    return LocalRedisCluster(extra_args=extra_args)


def resolve_service(
    name: str, *, allow_skip: bool, extra_args: Sequence[str] = ()
) -> ServiceEndpoint:
    """Provide a running ``name`` server from the first provider that is available.

    Args:
        name: ``"redis"``, ``"postgres"``, ``"mongodb"`` or ``"redis_cluster"``.
        allow_skip: Call ``pytest.skip`` instead of raising when nothing is available.
        extra_args: Further server arguments for the docker and local providers.

    Returns:
        A started endpoint; the caller must :meth:`~ServiceEndpoint.close` it.

    Raises:
        ServiceUnavailable: Nothing can provide the server (and skipping is not
            allowed), or a found server failed to start.
    """
    _check_name(name)
    url = os.environ.get(url_env(name), "").strip()
    if url:
        _check_reachable(name, url)
        return UrlEndpoint(name, url)
    reasons: list[str] = []
    if name in _docker.DOCKER_IMAGES:
        if docker_available():
            try:
                return _docker.DockerEndpoint(name, extra_args=extra_args)
            except Exception as exc:  # noqa: BLE001 - reported, then the local provider is tried
                reasons.append(f"docker: {type(exc).__name__}: {exc}")
        else:
            reasons.append("docker: no Docker engine answered")
    try:
        endpoint = _local_endpoint(name, extra_args)
    except ServiceUnavailable as exc:
        reasons.append(f"local: {exc}")
    else:
        try:
            endpoint.start()
        except BaseException:
            endpoint.close()
            raise
        return endpoint
    message = unavailable_message(name, reasons)
    if allow_skip:
        import pytest

        pytest.skip(message)
    raise ServiceUnavailable(message)


def _check_reachable(name: str, url: str, timeout: float = 5.0) -> None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # several hosts, e.g. a replica-set seed list
        return
    if not host or not port:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ServiceUnavailable(f"{url_env(name)}={url} is not reachable: {exc}") from exc
