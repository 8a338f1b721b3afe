"""The ``polystore`` command group, the options every subcommand takes, and :func:`main`."""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import click

from polystore.cli._ui import Ui
from polystore.errors import PolystoreError

__all__ = ["cli", "command", "main"]

_CONFIG_HELP = "TOML file (default: $POLYSTORE_CONFIG, else ./polystore.toml, else defaults)."
_JSON_HELP = "Print machine-readable JSON on stdout."
EXIT_BROKEN_PIPE = 1
"""Exit status when stdout was closed early (click's own choice for the same case)."""


def _ui() -> Ui:
    return click.get_current_context().ensure_object(Ui)


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Ui).config = value


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Ui).json = True


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config`` and ``--json`` so they work before or after the subcommand."""
    func = click.option(
        "--json", is_flag=True, expose_value=False, callback=_set_json, help=_JSON_HELP
    )(func)
    return click.option(
        "--config",
        metavar="FILE",
        expose_value=False,
        callback=_set_config,
        help=_CONFIG_HELP,
    )(func)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    lines = [f"polystore-sdk {_version('polystore-sdk')}"]
    for entry in sorted(metadata.entry_points(group="polystore"), key=lambda e: e.name):
        dist = entry.dist.name if entry.dist is not None else entry.name
        lines.append(f"{dist} {_version(dist)}")
    lines.append(f"Python {platform.python_version()}")
    click.echo("\n".join(lines))
    ctx.exit(0)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "(not installed)"


@click.group(
    name="polystore",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=True,
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the versions of polystore, its plugins and Python, then exit.",
)
@common_options
def cli() -> None:
    """Check, try and measure a polystore deployment.

    \b
    Configuration comes from --config FILE, else $POLYSTORE_CONFIG, else ./polystore.toml,
    plus POLYSTORE_* environment variables; with none of them, one embedded SQLite file
    under ./.polystore/ serves every route. Colour is used on a terminal unless NO_COLOR
    is set.
    """


def command(name: str, **settings: Any) -> Callable[[Callable[..., int]], click.Command]:
    """Register a subcommand of ``polystore``.

    The decorated function receives the :class:`~polystore.cli._ui.Ui` first, then its
    own click parameters, and returns the exit status. A :class:`PolystoreError` it
    raises is reported (redacted) with status 1.
    """

    def decorate(func: Callable[..., int]) -> click.Command:
        @functools.wraps(func)
        def invoke(*args: Any, **kwargs: Any) -> int:
            ui = _ui()
            try:
                return func(ui, *args, **kwargs)
            except PolystoreError as exc:
                ui.error(exc)
                return 1

        make: Callable[[Callable[..., Any]], click.Command] = click.command(name, **settings)
        built = make(common_options(invoke))
        cli.add_command(built)
        return built

    return decorate


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        try:
            result = cli.main(
                args=list(argv) if argv is not None else None,
                prog_name="polystore",
                standalone_mode=False,
            )
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except click.Abort:
            click.echo("aborted", err=True)
            return 1
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`polystore --json plugins | head -1`): stop quietly, and keep
        # Python's final flush from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0
