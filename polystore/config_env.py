"""The ``POLYSTORE_*`` environment: which variables polystore reads, and a warning for others.

Settings are read from ``POLYSTORE_<FIELD>`` and ``POLYSTORE_<FIELD>__<KEY>...`` (nested
with ``__``); ``POLYSTORE_CONFIG`` names the TOML file and ``POLYSTORE_DISABLE_PLUGINS``
blocks plugins; ``POLYSTORE_TEST_*`` and ``POLYSTORE_BENCH_*`` belong to the test kit and
the benchmarks. Any other ``POLYSTORE_*`` variable is read by nothing, most likely a
misspelling: it gets a :class:`~polystore.ConfigurationWarning` with a suggestion. A warning
rather than an error, since the environment is shared with other programs.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Mapping

from polystore.errors import ConfigurationWarning
from polystore.settings_errors import closest

__all__ = [
    "ENV_PREFIX",
    "OTHER_PREFIXES",
    "OTHER_VARIABLES",
    "caller_stacklevel",
    "warn_about_unknown_variables",
]

ENV_PREFIX = "POLYSTORE_"
OTHER_VARIABLES = frozenset({"CONFIG", "DISABLE_PLUGINS"})
"""``POLYSTORE_*`` variables that are not settings (the file; plugins never to load)."""
OTHER_PREFIXES = ("TEST_", "BENCH_")
"""``POLYSTORE_*`` families of the test kit and the benchmarks."""


def warn_about_unknown_variables(environ: Mapping[str, str], fields: Iterable[str]) -> None:
    """Warn about ``POLYSTORE_*`` variables that nothing reads.

    Args:
        environ: The environment (``os.environ``).
        fields: The top-level settings fields (``backends``, ``routes``, ...).
    """
    fields = sorted(fields)
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].upper()
        head, nested, tail = rest.partition("__")
        if head.lower() in fields or rest in OTHER_VARIABLES or rest.startswith(OTHER_PREFIXES):
            continue
        field = closest(head.lower(), fields) if nested else None
        other = closest(rest, OTHER_VARIABLES)
        if field is not None:
            hint = f"did you mean {ENV_PREFIX}{field.upper()}__{tail}?"
        elif other is not None:
            hint = f"did you mean {ENV_PREFIX}{other}?"
        else:
            known = [f"{ENV_PREFIX}{f.upper()}__..." for f in fields]
            hint = "known: " + ", ".join(known + sorted(ENV_PREFIX + o for o in OTHER_VARIABLES))
        warnings.warn(
            ConfigurationWarning(
                f"environment variable {name} is not a polystore setting and is ignored; {hint}"
            ),
            stacklevel=caller_stacklevel(),
        )


_INTERNAL = frozenset({"polystore", "pydantic", "pydantic_settings", "pluggy", "contextlib"})


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside polystore
    (and the libraries it calls through), so the warning names the application's line."""
    frame = sys._getframe(1)  # the function about to warn
    level = 1
    while frame.f_back is not None:
        module = str(frame.f_globals.get("__name__", "")).partition(".")[0]
        if module not in _INTERNAL:
            break
        frame = frame.f_back
        level += 1
    return level
