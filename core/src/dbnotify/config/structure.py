"""Structuring: raw TOML data -> attrs classes, with every problem located.

cattrs alone stops at the first unknown key and never reports attrs validators, so
structuring goes through one hook factory (:func:`_attrs_hook`) that collects, for every
attrs class: unknown keys (with a did-you-mean), type errors per field, and validator
errors, each with its path. All of them are reported at once as a :class:`ConfigError`.

Each caller owns its converter: :func:`make_converter` gives a fresh one, and a plugin
that needs a hook of its own (email addresses, say) registers it on its own converter
and passes it to :func:`structure`. Nothing here is shared or changed by an import.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote

from dbnotify.config.fields import (
    Duration,
    describe_value,
    did_you_mean,
    file_key,
    parse_duration,
    regular_file_problem,
)
from dbnotify.errors import ConfigError, ConfigIssue, InvalidField, join_path
from dbnotify.secrets import Secret

T = TypeVar("T")


def _strict(kind: type, noun: str) -> Callable[[Any, type], Any]:
    def hook(value: Any, _cl: type) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"must be {noun} (got {describe_value(value)})")
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise ValueError(f"must be {noun} (got {describe_value(value)})")
        if isinstance(value, float) and not math.isfinite(value):  # TOML has nan and inf
            raise ValueError(f"must be a finite number (got {describe_value(value)})")
        return value

    return hook


def _enum_hook(value: Any, cl: type[enum.Enum]) -> Any:
    choices = [str(m.value) for m in cl]
    try:
        return cl(value)
    except ValueError:
        raise ValueError(
            f"must be one of {', '.join(choices)} (got {describe_value(value)})"
            + (did_you_mean(value, choices) if isinstance(value, str) else "")
        ) from None


def _secret_hook(value: Any, _cl: type) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    if isinstance(value, Mapping) and set(value) == {"env"}:
        name = value["env"]
        if not isinstance(name, str) or not name:
            raise ValueError(
                "env must name an environment variable, e.g. "
                f'{{ env = "SMTP_PASSWORD" }} (got {describe_value(name)})'
            )
        if name not in os.environ:
            raise ValueError(
                f"environment variable {name} is not set; export it, or use "
                '{ file = "/path" } or a literal value'
            )
        return Secret(os.environ[name], source=f"env {name}")
    if isinstance(value, Mapping) and set(value) == {"file"}:
        path = Path(str(value["file"])).expanduser()
        if problem := regular_file_problem(path):
            raise ValueError(f"cannot read secret file {str(path)!r}: it {problem}")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(
                f"cannot read secret file {str(path)!r}: {exc.strerror or exc}"
            ) from None
        return Secret(text.rstrip("\r\n"), source=f"file {path}")
    got = (
        "a table with keys " + ", ".join(value)
        if isinstance(value, Mapping)
        else type(value).__name__
    )
    raise ValueError(f'must be a string, {{ env = "NAME" }} or {{ file = "/path" }} (got {got})')


def _tuple_hook(converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    def hook(value: Any, cl: Any) -> Any:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ValueError(f"must be a list (got {describe_value(value)})")
        (item_type, *_rest) = cl.__args__
        issues: list[ConfigIssue] = []
        items = []
        for index, item in enumerate(value):
            try:
                items.append(converter.structure(item, item_type))
            except Exception as exc:  # noqa: BLE001 - turned into located issues
                issues.extend(_issues(exc, f"[{index}]"))
        if issues:
            raise ConfigError(issues)
        return tuple(items)

    return hook


def _dict_hook(converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    def hook(value: Any, cl: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a table (got {describe_value(value)})")
        _key_type, value_type = cl.__args__
        issues: list[ConfigIssue] = []
        result = {}
        for key, item in value.items():
            try:
                result[str(key)] = converter.structure(item, value_type)
            except Exception as exc:  # noqa: BLE001
                issues.extend(_issues(exc, str(key)))
        if issues:
            raise ConfigError(issues)
        return result

    return hook


def _issues(exc: BaseException, path: str) -> list[ConfigIssue]:
    """Flatten whatever structuring raised into located issues."""
    if isinstance(exc, ConfigError):
        return [ConfigIssue(join_path(path, i.path), i.message) for i in exc.issues]
    if isinstance(exc, IterableValidationError):
        found: list[ConfigIssue] = []
        for sub in exc.exceptions:
            notes = [
                n for n in getattr(sub, "__notes__", []) if isinstance(n, IterableValidationNote)
            ]
            where = f"[{notes[0].index!r}]" if notes else ""
            found.extend(_issues(sub, path + where))
        return found
    if isinstance(exc, BaseExceptionGroup):
        return [i for sub in exc.exceptions for i in _issues(sub, path)]
    if isinstance(exc, InvalidField):
        return [ConfigIssue(join_path(path, exc.field), str(exc))]
    if isinstance(exc, ValueError | TypeError):
        return [ConfigIssue(path, str(exc))]
    return [ConfigIssue(path, f"{type(exc).__name__}: {exc}")]


def _attrs_hook(converter: cattrs.Converter) -> Callable[[type], Callable[[Any, type], Any]]:
    def factory(cl: type) -> Callable[[Any, type], Any]:
        attrs.resolve_types(cl)  # string annotations -> types, for cattrs
        fields = attrs.fields(cl)
        by_key = {file_key(a): a for a in fields if a.init}

        def structure(value: Any, _cl: type) -> Any:
            if isinstance(value, cl):
                return value
            if not isinstance(value, Mapping):
                raise ValueError(f"must be a table (got {describe_value(value)})")
            issues: list[ConfigIssue] = []
            for key in value:
                if key not in by_key:
                    issues.append(
                        ConfigIssue(
                            str(key),
                            "unknown key"
                            + (did_you_mean(str(key), by_key) or f" (known: {', '.join(by_key)})"),
                        )
                    )
            kwargs: dict[str, Any] = {}
            for key, attribute in by_key.items():
                if key not in value:
                    if attribute.default is attrs.NOTHING:
                        example = attribute.metadata.get("example")
                        what = attribute.metadata.get("description")
                        issues.append(
                            ConfigIssue(
                                key,
                                "required, not set"
                                + (f" ({what})" if what else "")
                                + (f"; e.g. {key} = {example}" if example else ""),
                            )
                        )
                    continue
                try:
                    structured = converter.structure(value[key], attribute.type)
                    if attribute.validator is not None:
                        attribute.validator(None, attribute, structured)
                except Exception as exc:  # noqa: BLE001 - turned into located issues
                    issues.extend(_issues(exc, key))
                    continue
                kwargs[attribute.alias] = structured
            if issues:
                raise ConfigError(issues)
            try:
                return cl(**kwargs)
            except (ValueError, TypeError) as exc:  # cross-field checks in __attrs_post_init__
                raise ConfigError(_issues(exc, "")) from None

        return structure

    return factory


def make_converter() -> cattrs.Converter:
    """A fresh converter with the core's hooks, for a plugin to add hooks of its own to.

    Strict scalars (``"25"`` is not a port), ``Secret`` from a literal, ``{ env }`` or
    ``{ file }``, ``Duration``, enums with their choices, tuples and tables with each
    item located, and attrs classes with every issue collected. Register a hook with
    ``register_structure_hook(YourType, hook)``; the hook raises ``ValueError("must
    ...")`` (or a :class:`ConfigError` for issues inside the value), and pass the
    converter to :func:`structure`.
    """
    converter = cattrs.Converter()
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(float, _strict(float, "a number"))
    converter.register_structure_hook(bool, _strict(bool, "true or false"))
    converter.register_structure_hook(Secret, _secret_hook)
    converter.register_structure_hook(Duration, lambda value, _cl: parse_duration(value))
    converter.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum_hook
    )
    converter.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is tuple, _tuple_hook(converter)
    )
    converter.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is dict, _dict_hook(converter)
    )
    converter.register_structure_hook_factory(attrs.has, _attrs_hook(converter))
    return converter


_DEFAULT = make_converter()
"""For callers without hooks of their own; private, so that nobody registers on it."""


def structure(cl: type[T], raw: Any, *, converter: cattrs.Converter | None = None) -> T:
    """Structure ``raw`` into ``cl``, raising a :class:`ConfigError` with every issue.

    The one way to turn a plugin's config block into its config class. A plugin with
    types of its own passes ``converter``: one it made with :func:`make_converter` and
    registered its hooks on.
    """
    try:
        return (converter or _DEFAULT).structure(raw, cl)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(_issues(exc, "")) from None
