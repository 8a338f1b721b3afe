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

import abc
import atexit
import contextlib
import importlib
import os
import signal
import socket
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

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


class ServiceUnavailable(RuntimeError):  # noqa: N818 - the public name of this error
    """No server could be provided, or a server failed to start or answer."""


class FaultControlError(NotImplementedError):
    """stop/start/kill were called on a server this process does not own."""


def url_env(name: str) -> str:
    """The environment variable giving a URL for ``name``, e.g. ``POLYSTORE_TEST_REDIS_URL``."""
    return f"POLYSTORE_TEST_{_check_name(name).upper()}_URL"


def _check_name(name: str) -> str:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; expected one of {SERVICE_NAMES}")
    return name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_OPEN_ENDPOINTS: set[ServiceEndpoint] = set()


@atexit.register
def _close_leftovers() -> None:
    for endpoint in list(_OPEN_ENDPOINTS):
        with contextlib.suppress(Exception):  # e.g. a half-constructed endpoint
            endpoint.close()


def _close_then_terminate(signum: int, frame: Any) -> None:
    """SIGTERM: stop the private servers (atexit does not run on a signal), then die of
    the signal as the process would have."""
    _close_leftovers()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _close_on_sigterm() -> None:
    """Install :func:`_close_then_terminate`, unless the program handles SIGTERM itself."""
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _close_then_terminate)


class ServiceEndpoint(abc.ABC):
    """A server that tests connect to, with fault controls when it is private.

    Attributes:
        name: Service name (``"redis"``, ``"postgres"``, ``"mongodb"``, ...).
        provider: ``"url"``, ``"docker"`` or ``"local"``.
    """

    provider: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name
        self._closed = False
        _OPEN_ENDPOINTS.add(self)
        _close_on_sigterm()

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The driver URL of the server; unchanged across stop/start."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server if it is not running and wait until it answers.

        The same port and data are reused after :meth:`stop` or :meth:`kill`.

        Raises:
            ServiceUnavailable: It did not answer in time (the message has the log tail).
        """

    @abc.abstractmethod
    def stop(self) -> None:
        """Shut the server down cleanly and wait until it has exited."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as in a crash."""

    def restart(self) -> None:
        """Stop the server cleanly, then start it again on the same port and data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Final cleanup: kill processes/containers and remove temporary data. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _OPEN_ENDPOINTS.discard(self)
        self._cleanup()

    @abc.abstractmethod
    def _cleanup(self) -> None:
        """Release what the endpoint owns (subclass hook for :meth:`close`)."""

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailable(f"{self!r} is closed")

    def __enter__(self) -> ServiceEndpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            url = self.url
        except (AttributeError, IndexError):  # not fully constructed
            url = "?"
        return f"<{type(self).__name__} {self.name} provider={self.provider} url={url}>"


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
    # Imported late: these subclass ServiceEndpoint.
    from polystore.testing import _docker, _servers

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
        endpoint = _servers.local_endpoint(name, extra_args)
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
