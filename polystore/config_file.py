"""The TOML configuration file: which file, reading it, and where each key sits in it.

The file is ``POLYSTORE_CONFIG`` when set, else ``./polystore.toml``. A file named on purpose
(``POLYSTORE_CONFIG`` or ``load_settings(path)``) must exist; the default one may be absent.
``load_settings(path)`` hands its path to the settings sources through a context variable,
so loading one file never changes the process environment nor another task's loading.

Errors name the file and line: TOML syntax errors as the parser reports them, and invalid
or unknown keys through :func:`locate`, which maps key paths to the lines that define them.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from polystore.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "ConfigFile",
    "TomlFileSource",
    "chosen_file",
    "using_file",
]

CONFIG_ENV = "POLYSTORE_CONFIG"
"""Environment variable naming the TOML file (default ``./polystore.toml``)."""

DEFAULT_CONFIG_FILE = "polystore.toml"

_explicit_file: ContextVar[Path | None] = ContextVar("polystore_config_file", default=None)
_HEADER = re.compile(r"^\s*\[\[?\s*(?P<key>[^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_PART = r"""(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')"""
_ASSIGNMENT = re.compile(rf"^\s*(?P<key>{_PART}(?:\s*\.\s*{_PART})*)\s*=")
_KEY_PART = re.compile(_PART)
_DECODE_POSITION = re.compile(r"\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")


class ConfigFile:
    """One TOML configuration file, read and parsed.

    Args:
        path: The file.
        named_by: How it was chosen (``"POLYSTORE_CONFIG"``, ``"load_settings"``), or
            ``None`` for the default file, which may be absent.

    Raises:
        ConfigurationError: A file named on purpose does not exist, cannot be read, or is
            not valid TOML (message with file, line and column).
    """

    def __init__(self, path: Path, named_by: str | None = None) -> None:
        self.path = path
        self.text = ""
        self.data: dict[str, Any] = {}
        self._lines: dict[tuple[str, ...], int] = {}
        if not path.is_file():
            if named_by is not None:
                raise ConfigurationError(
                    f"configuration file {str(path)!r} (named by {named_by}) does not exist"
                )
            return
        try:
            self.text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"configuration file {str(path)!r} cannot be read: {exc}"
            ) from None
        try:
            self.data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            position = _DECODE_POSITION.search(message)
            where = f"{path}"
            if position is not None:
                message = message[: position.start()]
                where += f", line {position['line']}, column {position['column']}"
            raise ConfigurationError(f"{where}: invalid TOML: {message}") from None
        self._lines = _key_lines(self.text)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line defining ``path`` or, failing that, its nearest enclosing table."""
        if not self.text:
            return None
        keys = tuple(str(part) for part in path)
        while keys:
            line = self._lines.get(keys)
            if line is not None:
                return line
            keys = keys[:-1]
        return None

    def holds(self, path: tuple[str | int, ...]) -> bool:
        """Whether the file itself gives the key ``path``."""
        node: Any = self.data
        for part in path:
            if not isinstance(node, Mapping) or str(part) not in node:
                return False
            node = node[str(part)]
        return True

    def where(self, path: tuple[str | int, ...]) -> str | None:
        """``"polystore.toml, line 7"`` when the file gives ``path``, else ``None``."""
        if not self.holds(path[:1]):
            return None
        line = self.line_of(path)
        return f"{self.path.name}, line {line}" if line is not None else self.path.name


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(text))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Key paths (and every prefix of them) to the first line that defines them."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header is not None:
            table = _split_key(header["key"])
            path = table
        else:
            assignment = _ASSIGNMENT.match(line)
            if assignment is None:
                continue
            path = table + _split_key(assignment["key"])
        for end in range(1, len(path) + 1):
            lines.setdefault(path[:end], number)
    return lines


def chosen_file() -> ConfigFile:
    """The configuration file in effect: given to ``load_settings``, else from the environment.

    Raises:
        ConfigurationError: See :class:`ConfigFile`.
    """
    explicit = _explicit_file.get()
    if explicit is not None:
        return ConfigFile(explicit, "load_settings")
    named = os.environ.get(CONFIG_ENV)
    if named:
        return ConfigFile(Path(named), CONFIG_ENV)
    return ConfigFile(Path(DEFAULT_CONFIG_FILE))


@contextlib.contextmanager
def using_file(path: Path) -> Iterator[None]:
    """Within the block, settings read ``path`` (this task only; the environment untouched)."""
    token = _explicit_file.set(path)
    try:
        yield
    finally:
        _explicit_file.reset(token)


class TomlFileSource(PydanticBaseSettingsSource):
    """A pydantic-settings source giving the contents of one :class:`ConfigFile`."""

    def __init__(self, settings_cls: type[BaseSettings], config: ConfigFile) -> None:
        super().__init__(settings_cls)
        self.file = config

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.file.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.file.data)
