"""The ``polystore`` command: ``plugins``, ``check``, ``demo``, ``bench``, ``rebalance``,
``repair``, ``maintain``.

Each subcommand lives in a module of its own and registers itself with
:func:`polystore.cli._group.command`; a new one is a module imported below::

    import click
    from polystore.cli._group import command
    from polystore.cli._ui import Ui

    @command("rebalance")
    @click.argument("route")
    def rebalance(ui: Ui, route: str) -> int:
        \"\"\"Move every key of the sharded ROUTE to the shard that owns it.\"\"\"

        async def run() -> int:
            async with ui.connect() as ps:
                with ui.progress(f"rebalancing {route}") as bar:
                    await ps.route(route).rebalance(progress=bar)
            return 0

        return ui.run(run())

The function gets the shared :class:`~polystore.cli._ui.Ui` (``--config``/``--json``,
which work before or after the subcommand name), returns the exit status, and may raise
any :class:`~polystore.errors.PolystoreError` (reported redacted, status 1). Anything
slower than a second runs inside ``ui.progress(description, total=None)``: a spinner, or
a bar when ``total`` is given, drawn on stderr only when it is a terminal. The tracker it
yields is callable as ``bar(done, total)`` and has ``advance(n)`` and ``update(...)``.
"""

from __future__ import annotations

from polystore.cli import bench, check, demo, info, maintain, rebalance, repair
from polystore.cli._group import cli, command, main

__all__ = [
    "bench",
    "check",
    "cli",
    "command",
    "demo",
    "info",
    "main",
    "maintain",
    "rebalance",
    "repair",
]
