"""What every command shares: output (text or JSON), colour, progress, connecting.

A command receives one :class:`Ui`. Text goes to stdout through :meth:`Ui.line` (styled
only when stdout is a terminal and ``NO_COLOR`` is unset); JSON through :meth:`Ui.emit`;
problems through :meth:`Ui.fail` (stderr). Anything that may take more than a second runs
inside :meth:`Ui.progress`, which draws a spinner (no ``total``) or a bar (with ``total``)
on stderr when stderr is a terminal, and nothing otherwise, so pipes and ``--json`` stay
clean::

    with ui.progress("moving keys", total=None) as bar:
        report = await store.rebalance(progress=bar)   # bar(done, total) or bar.advance()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from polystore.app import Polystore
from polystore.errors import PolystoreError
from polystore.redact import redact_text
from polystore.settings import CONFIG_ENV, DEFAULT_CONFIG_FILE, PolystoreSettings, load_settings

__all__ = ["ConfigSource", "ProgressTracker", "Ui"]

T = TypeVar("T")

_ENV_PREFIXES = ("POLYSTORE_BACKENDS", "POLYSTORE_ROUTES")


class ProgressTracker:
    """One running progress display; call it as ``bar(done, total)`` or use its methods."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task
        self.completed = 0
        self.total: int | None = None

    def __call__(self, done: int, total: int | None = None) -> None:
        """Set the amount done (and the total, once known)."""
        self.update(completed=done, total=total)

    def advance(self, amount: int = 1) -> None:
        """Add ``amount`` to the amount done."""
        self.update(completed=self.completed + amount)

    def update(
        self,
        *,
        completed: int | None = None,
        total: int | None = None,
        description: str | None = None,
    ) -> None:
        """Change what the display shows; ``None`` leaves a field as it is."""
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=completed, total=total, description=description
            )


@dataclass(frozen=True)
class ConfigSource:
    """Where the settings came from, said in one line."""

    files: tuple[str, ...]
    env: tuple[str, ...]

    @classmethod
    def detect(cls, config: str | None) -> ConfigSource:
        """Look at ``--config``, ``POLYSTORE_CONFIG``, ``./polystore.toml`` and the env."""
        if config is not None:
            files: tuple[str, ...] = (f"{config} (--config)",)
        elif os.environ.get(CONFIG_ENV):
            files = (f"{os.environ[CONFIG_ENV]} ({CONFIG_ENV})",)
        elif Path(DEFAULT_CONFIG_FILE).is_file():
            files = (f"./{DEFAULT_CONFIG_FILE}",)
        else:
            files = ()
        env = tuple(sorted(n for n in os.environ if n.upper().startswith(_ENV_PREFIXES)))
        return cls(files, env)

    def describe(self, settings: PolystoreSettings) -> str:
        """``file …``, ``environment …``, or the defaults and what they mean."""
        parts = [f"file {name}" for name in self.files]
        if self.env:
            parts.append("environment " + ", ".join(self.env))
        if not settings.backends:
            parts.append(
                "defaults: no backend configured, so one embedded SQLite file "
                "./.polystore/polystore.db serves every route"
            )
        return "; ".join(parts)


@dataclass
class Ui:
    """Options common to every command, and the output helpers built on them."""

    config: str | None = None
    json: bool = False
    _out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    _err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    # -- output -------------------------------------------------------------------------

    def line(self, text: str = "", style: str | None = None) -> None:
        """Print one line of text output (never interpreted as markup)."""
        self._out.print(Text(text, style=style or ""))

    def parts(self, *parts: tuple[str, str | None]) -> None:
        """Print one line made of (text, style) parts."""
        self._out.print(Text.assemble(*((t, s or "") for t, s in parts)))

    def emit(self, data: Any) -> None:
        """Print ``data`` as JSON on stdout."""
        print(json.dumps(data, indent=2, default=str))

    def fail(self, message: str) -> None:
        """Print a problem on stderr (secrets redacted)."""
        self._err.print(Text(redact_text(message), style="bold red"))

    def error(self, exc: PolystoreError) -> None:
        """Report a polystore error as text or JSON."""
        message = redact_text(str(exc))
        if self.json:
            self.emit({"ok": False, "error": type(exc).__name__, "message": message})
        else:
            self.fail(f"{type(exc).__name__}: {message}")

    # -- progress -----------------------------------------------------------------------

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[ProgressTracker]:
        """Show a spinner (``total=None``) or a bar on stderr while the block runs.

        Nothing is drawn when stderr is not a terminal.
        """
        if not self._err.is_terminal:
            yield ProgressTracker(None, None)
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self._err, transient=True) as progress:
            task = progress.add_task(description, total=total)
            tracker = ProgressTracker(progress, task)
            tracker.total = total
            yield tracker

    # -- running ------------------------------------------------------------------------

    def settings(self) -> PolystoreSettings:
        """The settings named by ``--config``, or from the environment and defaults."""
        return load_settings(self.config)

    def source(self, settings: PolystoreSettings) -> str:
        """Where ``settings`` came from, in one line."""
        return ConfigSource.detect(self.config).describe(settings)

    @contextlib.asynccontextmanager
    async def connect(self, settings: PolystoreSettings | None = None) -> AsyncIterator[Polystore]:
        """A started :class:`Polystore`, with a spinner while the backends connect."""
        ps = Polystore(settings if settings is not None else self.settings())
        with self.progress("connecting to " + ", ".join(sorted(ps.settings.backends))):
            await ps.start()
        try:
            yield ps
        finally:
            await ps.aclose()

    @staticmethod
    def run(coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on a new event loop."""
        return asyncio.run(coro)
