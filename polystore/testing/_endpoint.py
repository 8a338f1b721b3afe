"""What every server launcher of the test kit shares: :class:`ServiceEndpoint`, its
errors, :func:`free_port`, and the cleanup of endpoints a process leaves open.

A leaf module: it imports no other module of the kit, so the launchers (``_servers``,
``_cluster``, ``_docker``, ...) and :mod:`polystore.testing.services` all import from
here and never from each other in a cycle. Nothing happens at import: the exit hook and
the SIGTERM handler that stop leftover servers are installed when the first endpoint is
made.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import os
import signal
import socket
import threading
from types import TracebackType
from typing import Any, ClassVar

__all__ = ["FaultControlError", "ServiceEndpoint", "ServiceUnavailable", "free_port"]


class ServiceUnavailable(RuntimeError):  # noqa: N818 - the public name of this error
    """No server could be provided, or a server failed to start or answer."""


class FaultControlError(NotImplementedError):
    """stop/start/kill were called on a server this process does not own."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_OPEN_ENDPOINTS: set[ServiceEndpoint] = set()


_hooks_installed = False


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


def _track(endpoint: ServiceEndpoint) -> None:
    """Remember ``endpoint`` until it is closed; on the first one, install the exit hook
    and the SIGTERM handler that close what is left open."""
    global _hooks_installed
    _OPEN_ENDPOINTS.add(endpoint)
    if not _hooks_installed:
        _hooks_installed = True
        atexit.register(_close_leftovers)
        _close_on_sigterm()


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
        _track(self)

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
