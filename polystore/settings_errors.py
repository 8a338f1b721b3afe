"""Readable configuration errors: key paths, "did you mean", and where a key was given.

Every message names the key by its full path (``routes.sessions.requires``), never quotes
the value given (it may be a secret), suggests the closest known key for an unknown one, and
says where the key came from: ``polystore.toml, line 7`` or the environment variable.
The known keys come from the settings models themselves, so fields added later are known
without a list to keep up to date.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import pydantic
from pydantic import BaseModel

from polystore.config_file import ConfigFile

__all__ = [
    "closest",
    "describe_validation_error",
    "did_you_mean",
    "environment_variable",
    "known_keys",
]

Location = tuple[str | int, ...]


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: ``X | None`` gives ``[X]``."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def _step(annotation: Any, part: str | int) -> list[Any]:
    found: list[Any] = []
    for option in _unwrap(annotation):
        origin = typing.get_origin(option)
        if isinstance(option, type) and issubclass(option, BaseModel):
            for name, field in option.model_fields.items():
                if part in (name, field.alias):
                    found.append(field.annotation)
        elif origin in (dict, Mapping) and isinstance(part, str):
            found.append(typing.get_args(option)[1])
        elif origin in (list, tuple, Sequence) and isinstance(part, int):
            found.append(typing.get_args(option)[0])
    return found


def known_keys(models: Iterable[type[BaseModel]], parent: Location) -> list[str]:
    """The keys the models accept inside ``parent`` (``()`` for the top level), sorted."""
    level: list[Any] = list(models)
    for part in parent:
        level = [found for annotation in level for found in _step(annotation, part)]
    keys: set[str] = set()
    for annotation in level:
        for option in _unwrap(annotation):
            if isinstance(option, type) and issubclass(option, BaseModel):
                keys.update(field.alias or name for name, field in option.model_fields.items())
    return sorted(keys)


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` (difflib), if one is close enough."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, known: Sequence[str], *, kind: str = "keys") -> str:
    """``"did you mean 'routes'?"``, or the list of known ``kind`` when none is close."""
    close = closest(name, known)
    if close is not None:
        return f"did you mean {close!r}?"
    return f"known {kind}: {', '.join(known)}" if known else f"no {kind} are known here"


def environment_variable(path: Location, environ: Mapping[str, str]) -> str | None:
    """The ``POLYSTORE_*`` variable that gives ``path``, a key inside it or around it."""
    upper = {name.upper(): name for name in environ}
    wanted = "POLYSTORE_" + "__".join(str(part).upper() for part in path)
    inside = sorted(name for name in upper if name.startswith(wanted + "__"))
    if wanted in upper or inside:
        return upper[wanted] if wanted in upper else upper[inside[0]]
    for end in range(len(path) - 1, 0, -1):
        name = upper.get("POLYSTORE_" + "__".join(str(part).upper() for part in path[:end]))
        if name is not None:
            return name
    return None


def describe_validation_error(
    exc: pydantic.ValidationError,
    where: str = "",
    *,
    models: Iterable[type[BaseModel]] = (),
    config: ConfigFile | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """A readable summary of a pydantic error that never echoes input values (secrets).

    Args:
        exc: The error.
        where: Key path of the validated object (``"backends.cache"``), or ``""``.
        models: Models whose fields are the keys known at each level, for suggestions.
        config: The TOML file that gave (some of) the values, to name file and line.
        environ: The environment that gave (some of) the values, to name the variable.
    """
    models = tuple(models)
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        location: Location = tuple(error["loc"])
        path = ".".join(part for part in (where, *map(str, location)) if part) or "(root)"
        if error["type"] == "extra_forbidden":
            known = known_keys(models, location[:-1])
            message = f"unknown key; {did_you_mean(str(location[-1]), known)}"
        else:
            message = error["msg"]
        base: Location = tuple(where.split(".")) if where else ()
        origin = _origin(base + location, config, environ)
        lines.append(f"{path}: {message}" + (f" ({origin})" if origin else ""))
    return "; ".join(lines)


def _origin(
    location: Location, config: ConfigFile | None, environ: Mapping[str, str] | None
) -> str | None:
    """Where the key was given: the file's line, else the environment variable.

    A missing key is given nowhere: it is placed where its table is.
    """
    for path in (location, location[:-1]):
        if config is not None and path and config.holds(path):
            return config.where(location)
        variable = environment_variable(path, environ) if environ is not None and path else None
        if variable is not None:
            return f"environment variable {variable}"
    return None
