"""Field helpers for configuration classes: ``setting()``, validators, durations, wording.

A leaf: it imports nothing of the framework but :mod:`dbnotify.secrets`, so that every
layer (plugins, the renderer, the outbox) may declare settings without an import cycle.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NewType

import attrs

from dbnotify.secrets import Secret

# --- wording --------------------------------------------------------------------------


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'host'?`` for the closest choice, ignoring case; else ``""``."""
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[match[0]]!r}?" if match else ""


def describe_value(value: Any) -> str:
    """How a bad value is echoed in a message (secrets never are)."""
    if isinstance(value, Secret):
        return "a secret"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def regular_file_problem(path: str | os.PathLike[str]) -> str | None:
    """``"is a FIFO (named pipe), not a regular file"`` for a path that is not a regular
    file, else None (also when it cannot be stat'ed: its reader says why).

    Check before opening a file named in a configuration: reading a FIFO waits for a
    writer (``validate`` hangs), a device may never end.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return f"is {kind}, not a regular file"


# --- field helpers -------------------------------------------------------------------


def setting(
    *,
    description: str,
    default: Any = attrs.NOTHING,
    key: str | None = None,
    validator: Callable[[Any, attrs.Attribute[Any], Any], None] | None = None,
    factory: Callable[[], Any] | None = None,
    converter: Callable[[Any], Any] | None = None,
    example: str | None = None,
    schema: Mapping[str, Any] | None = None,
    repr: bool = True,
) -> Any:
    """An attrs field with the metadata our errors and docs use.

    ``key`` is the name in the file when it differs from the attribute (``from`` ->
    ``from_``); ``example`` is shown when a required key is missing. ``schema`` is the
    JSON Schema of the value, for a type of the plugin's own that ``dbnotify schema``
    cannot derive: it is part of the class, so no import can change it. ``repr=False``
    keeps a value that may hold a secret (a URL with a password) out of the repr.
    """
    metadata = {"description": description, "key": key, "example": example, "schema": schema}
    if factory is not None:
        return attrs.field(
            factory=factory,
            validator=validator,
            metadata=metadata,
            converter=converter,
            repr=repr,
        )
    return attrs.field(
        default=default, validator=validator, metadata=metadata, converter=converter, repr=repr
    )


@attrs.frozen
class InRange:
    """Validator: ``low <= value <= high``. Its limits are data, not a closure, so that
    ``dbnotify schema`` prints them as ``minimum``/``maximum`` (:meth:`json_schema`)."""

    low: float
    high: float

    def __call__(self, _inst: Any, _attr: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not self.low <= value <= self.high:
            raise ValueError(f"must be between {self.low} and {self.high} (got {value})")

    def json_schema(self) -> dict[str, Any]:
        return {"minimum": self.low, "maximum": self.high}


def in_range(low: float, high: float) -> InRange:
    return InRange(low, high)


@attrs.frozen
class Positive:
    """Validator: ``value > 0`` (``exclusiveMinimum: 0`` in the schema)."""

    def __call__(self, _inst: Any, _attr: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and value <= 0:
            raise ValueError(f"must be greater than 0 (got {value})")

    def json_schema(self) -> dict[str, Any]:
        return {"exclusiveMinimum": 0}


positive = Positive()


@attrs.frozen
class NonEmpty:
    """Validator: ``len(value) > 0``. The schema's keyword depends on how the value is
    written, so all three are given: JSON Schema applies each to its own type only."""

    def __call__(self, _inst: Any, _attr: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and len(value) == 0:
            raise ValueError("must not be empty")

    def json_schema(self) -> dict[str, Any]:
        return {"minLength": 1, "minItems": 1, "minProperties": 1}


non_empty = NonEmpty()


def validator_schema(validator: Any) -> dict[str, Any]:
    """The JSON Schema keywords a validator carries (``json_schema()``), through attrs'
    ``and_``, ``optional`` and lists of validators; ``{}`` for a plain function, which
    says nothing."""
    found: dict[str, Any] = {}
    for part in getattr(validator, "_validators", None) or (validator,):
        if part is None:
            continue
        # attrs' and_ has _validators, its optional() a validator: private, so duck-typed
        if hasattr(part, "_validators"):
            found.update(validator_schema(part))
        elif type(part).__name__ == "_OptionalValidator":
            found.update(validator_schema(part.validator))
        elif callable(method := getattr(part, "json_schema", None)):
            found.update(method())
    return found


def file_key(attribute: attrs.Attribute[Any]) -> str:
    key = attribute.metadata.get("key")
    return key if key else attribute.name


Duration = NewType("Duration", float)
"""Seconds: a number, or a string such as ``"30s"``, ``"5m"``, ``"1h"``, ``"2d"``."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*")
DURATION_SCHEMA: Mapping[str, Any] = {
    "oneOf": [
        {"type": "number", "exclusiveMinimum": 0},
        # _DURATION, with a digit 1-9 somewhere in the number: "0s" and "0.0m" are refused
        {"type": "string", "pattern": r"^\s*(?=[0-9.]*[1-9])\d+(\.\d+)?\s*[smhd]\s*$"},
    ]
}
"""How a :data:`Duration` is written, for ``dbnotify schema``: what :func:`parse_duration`
accepts."""
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"1h"`` or ``"2d"``; else ValueError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match[1]) * _UNIT[match[2]]
    else:
        raise ValueError(
            f'must be seconds, or a duration such as "30s", "5m", "1h", "2d" '
            f"(got {describe_value(value)})"
        )
    if not math.isfinite(seconds):  # TOML has nan and inf
        raise ValueError(f"must be a finite number of seconds (got {describe_value(value)})")
    if seconds <= 0:
        raise ValueError(f"must be more than 0 seconds (got {describe_value(value)})")
    return seconds


def not_below(key: str, other: str, levels: range, default: int) -> tuple[dict[str, Any], ...]:
    """``schema_rules`` for ``key >= other`` when both are integers in ``levels`` (ntfy's
    ``failure_priority`` and ``priority``): one rule per value of ``other``, as JSON Schema
    cannot compare two keys. ``other`` left out is its ``default``."""
    return tuple(
        {
            "if": {"properties": {other: {"const": level}}}
            | ({} if level == default else {"required": [other]}),
            "then": {"properties": {key: {"minimum": level}}},
        }
        for level in levels
    )
