"""``polystore plugins``: the backends that are installed."""

from __future__ import annotations

from typing import Any

from polystore.cli._group import command
from polystore.cli._ui import Ui
from polystore.plugins import PluginManager

__all__ = ["plugins"]


@command("plugins")
def plugins(ui: Ui) -> int:
    """List every installed backend plugin, its distribution and capabilities."""
    manager = PluginManager()
    versions = {info.name: info.version for info in manager.plugins()}
    rows: list[dict[str, Any]] = [
        {
            "backend": spec.name,
            "capabilities": list(spec.capabilities.names()),
            "plugin": spec.plugin,
            "distribution": spec.distribution,
            "version": versions.get(spec.plugin, ""),
            "description": spec.description,
        }
        for spec in manager.backends
    ]
    if ui.json:
        ui.emit({"backends": rows})
        return 0
    ui.line(f"{'backend':<10} {'distribution':<24} capabilities", style="bold")
    for row in rows:
        dist = f"{row['distribution']} {row['version']}".strip()
        ui.parts(
            (f"{row['backend']:<10} ", "cyan"),
            (f"{dist:<24} ", None),
            (", ".join(row["capabilities"]), None),
        )
        if row["description"]:
            ui.line(f"{'':<35} {row['description']}", style="dim")
    return 0
