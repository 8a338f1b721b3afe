"""Fixtures shared by the repository's own tests."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

RunInTerminal = Callable[..., str]


def _run_in_terminal(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``python -m polystore.cli ARGS`` with stdout and stderr on a pseudo-terminal,
    check that it succeeded, and return what it showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "polystore.cli", *args],
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", **(env or {})},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture
def run_in_terminal() -> RunInTerminal:
    """Runs the CLI on a pseudo-terminal (colour and progress on) and returns its output."""
    return _run_in_terminal
