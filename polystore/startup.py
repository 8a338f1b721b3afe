"""Opening an application's backends together, and failing cleanly when one cannot open.

Backends open concurrently, and every open runs to its end (bounded by the backend's own
connect timeout) before anything is closed: closing a backend under an ``open()`` in
progress would pull its client from under it, and cancelling a driver in the middle of
connecting can leave a connection behind. Then, when a *required* backend failed, one
typed error naming that backend is raised, and the caller closes every backend. A backend
marked ``required = false`` that cannot be reached is only reported back: the application
starts without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from polystore.errors import PluginError, PolystoreError, StoreError
from polystore.protocol import Backend

__all__ = ["backend_failure", "open_backends"]

logger = logging.getLogger("polystore")


def backend_failure(
    name: str, plugin: str, exc: BaseException, *, operation: str = "open"
) -> PolystoreError:
    """The error ``start()`` raises for backend ``name`` whose ``operation`` raised ``exc``.

    A polystore error is kept as it is (it is typed, chained to the driver's error and
    already names the backend; the name is added when it does not). Anything else is a
    defect of the plugin and becomes a :class:`~polystore.errors.PluginError` naming the
    exception's type only: a driver's message may quote a URL, password included.
    """
    if isinstance(exc, PolystoreError):
        if exc.backend is None:
            exc.backend = name
            exc.operation = exc.operation or operation
            exc.args = (exc._render(),)
        return exc
    error = PluginError(
        f"backend {name!r} (plugin {plugin!r}) failed to {operation} with an unexpected "
        f"{type(exc).__name__}",
        backend=name,
        operation=operation,
    )
    error.__cause__ = exc
    return error


async def open_backends(
    backends: Mapping[str, Backend],
    *,
    plugins: Mapping[str, str],
    optional: frozenset[str] = frozenset(),
) -> dict[str, StoreError]:
    """Open every backend concurrently.

    Args:
        backends: The backends by name.
        plugins: The plugin name of each backend, for messages.
        optional: Names of backends the application may start without.

    Returns:
        The optional backends that could not be reached, with the error of each.

    Raises:
        PolystoreError: A required backend failed to open (or an optional one failed for
            a reason other than being unreachable, such as its configuration). Every other
            open has ended when it is raised.
    """
    tasks = {name: asyncio.ensure_future(backend.open()) for name, backend in backends.items()}
    try:
        # Every open runs to its end, even once one has failed: cancelling a driver in the
        # middle of connecting can leave what it was making behind, unclosed.
        await asyncio.wait(tasks.values())
    finally:
        for task in tasks.values():
            task.cancel()  # start() itself was cancelled
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    down: dict[str, StoreError] = {}
    failure: PolystoreError | None = None
    for name, task in tasks.items():
        exc = asyncio.CancelledError() if task.cancelled() else task.exception()
        if exc is None:
            continue
        if name in optional and isinstance(exc, StoreError):
            logger.warning(
                "optional backend %s is unavailable, starting without it: %s",
                name,
                exc.message,
            )
            down[name] = exc
        elif failure is None:
            failure = backend_failure(name, plugins[name], exc)
        else:
            logger.warning(
                "backend %s failed to open as well: %s",
                name,
                exc.message if isinstance(exc, PolystoreError) else type(exc).__name__,
            )
    if failure is not None:
        raise failure
    return down
