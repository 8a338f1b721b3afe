"""A server's process tree, from ``/proc``: listing it, freezing it, thawing it.

Freezing is what fault tests call a frozen server: every process keeps its connections but
answers nothing. A server that forks a process per connection (PostgreSQL) makes that a
race: a child forked after the tree was listed would keep answering. So :func:`freeze`
stops the root first and waits until it *is* stopped (a stopped process forks nothing
more), then stops the children it finds, waits for them, and lists again, until a listing
finds no process that is not stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["descendants", "freeze", "is_stopped", "signal_tree", "stat_fields"]

_STOPPED_STATES = ("T", "t", "Z", "X")  # stopped, traced, or gone


def stat_fields(path: Path) -> list[str]:
    """The fields of a ``/proc/.../stat`` file after the command name (state first, then
    the parent pid), or an empty list when the process or thread is gone."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def descendants(pid: int) -> list[int]:
    """Pids of every live descendant of ``pid`` (from ``/proc``; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(stat)
        if fields:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def is_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (or the process is gone)."""
    for path in Path(f"/proc/{pid}/task").glob("*/stat"):  # none: gone, or no /proc
        fields = stat_fields(path)  # empty: the thread is gone
        if fields and fields[0] not in _STOPPED_STATES:
            return False
    return True


def _send(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _wait_stopped(pids: list[int], deadline: float) -> None:
    # SIGSTOP takes effect asynchronously: a request sent in between could be answered.
    while not all(map(is_stopped, pids)) and time.monotonic() < deadline:
        time.sleep(0.001)


def freeze(root: int, *, timeout: float = 5.0) -> list[int]:
    """SIGSTOP ``root`` and every descendant, including those forked while freezing.

    Returns once every process of the tree is stopped (or ``timeout`` has passed).

    Returns:
        The pids stopped.
    """
    deadline = time.monotonic() + timeout
    frozen = [root]
    _send(frozen, signal.SIGSTOP)
    _wait_stopped(frozen, deadline)
    while time.monotonic() < deadline:
        seen = set(frozen)
        new = [pid for pid in descendants(root) if pid not in seen or not is_stopped(pid)]
        if not new:
            break
        _send(new, signal.SIGSTOP)
        _wait_stopped(new, deadline)
        frozen.extend(pid for pid in new if pid not in seen)
    return frozen


def signal_tree(root: int, signum: signal.Signals) -> list[int]:
    """Send ``signum`` to ``root`` and every descendant, by pid; return the pids.

    By pid because some servers (PostgreSQL) put each child in a session of its own,
    out of reach of a signal to the root's process group.
    """
    pids = [root, *descendants(root)]
    _send(pids, signum)
    return pids
