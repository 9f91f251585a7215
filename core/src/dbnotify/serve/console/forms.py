"""A channel's add and edit form, drawn from its type's JSON Schema (the document
``dbnotify schema TYPE`` prints), and the form's fields read back into a block.

Each key of the schema becomes one field: enums a select, booleans a three-way select
(default, yes, no: an unchecked box could not say "leave it to the default"), numbers a
number input, lists a comma-separated text, objects JSON; descriptions are the help
text. A secret field (``"x-secret": true``) is a password input that is never filled in:
the page says only whether it is set, and leaving it empty keeps the one in the file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from dbnotify.serve.problems import Problem

SECRET_KINDS = {"value": "the value itself", "env": "an environment variable", "file": "a file"}
"""How a secret can be given in the console (a ``{ command }`` token is the file's to set)."""
_LIST_SPLIT = re.compile(r"[,;\n]")


@attrs.frozen
class FormField:
    """One key of the channel's block, as the form shows it."""

    key: str
    kind: str
    """text, integer, number, duration, select, bool, list, json or secret."""
    required: bool
    help: str
    default: str | None = None
    """The default as text, for the placeholder; ``None`` when there is none."""
    options: tuple[str, ...] = ()
    """A select's choices; a secret's kinds (keys of :data:`SECRET_KINDS`)."""
    required_unless: str = ""
    """When a key is required except with some choices (email's ``host`` and its
    presets), what those are, as the schema's ``allOf`` says."""
    minimum: float | None = None
    maximum: float | None = None
    many: bool = False
    """A list of secrets (Apprise's URLs): given separated by spaces."""


def form_fields(schema: Mapping[str, Any]) -> list[FormField]:
    """The fields of a channel type's schema, a ``preset`` first (it fills others)."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    unless = _required_unless(schema)
    fields = [
        _field(key, prop, key in required, unless.get(key, ""))
        for key, prop in properties.items()
        if key != "type"
    ]
    fields.sort(key=lambda f: f.key != "preset")
    return fields


def _required_unless(schema: Mapping[str, Any]) -> dict[str, str]:
    """``{"if": {<key> in choices}, "else": {"required": [k]}}`` rules, as words."""
    found: dict[str, str] = {}
    for rule in schema.get("allOf", ()):
        needed = rule.get("else", {}).get("required", ())
        when = rule.get("if", {}).get("properties", {})
        if len(needed) != 1 or len(when) != 1 or "then" in rule:
            continue
        (key, condition), (target,) = next(iter(when.items())), needed
        choices = condition.get("enum") or ([condition["const"]] if "const" in condition else [])
        if choices:
            found[target] = f"{key} is {', '.join(map(str, choices))}"
    return found


def _field(key: str, prop: Mapping[str, Any], required: bool, unless: str) -> FormField:
    help_text = _sentence(str(prop.get("description", "")))
    default = _text(prop["default"]) if "default" in prop else None
    common: dict[str, Any] = {
        "key": key,
        "required": required and not unless,
        "help": help_text,
        "default": default,
        "required_unless": unless,
    }
    if _secret(prop):
        return FormField(kind="secret", options=_secret_kinds(prop), **common)
    items = prop.get("items")
    if isinstance(items, Mapping) and _secret(items):
        return FormField(kind="secret", options=_secret_kinds(items), many=True, **common)
    if "enum" in prop:
        return FormField(kind="select", options=tuple(map(str, prop["enum"])), **common)
    kinds = _kinds(prop)
    if kinds == {"boolean"}:
        return FormField(kind="bool", **common)
    if kinds <= {"integer", "number"} and kinds:
        limits = {
            "minimum": prop.get("minimum", prop.get("exclusiveMinimum")),
            "maximum": prop.get("maximum"),
        }
        return FormField(kind="integer" if kinds == {"integer"} else "number", **common, **limits)
    if kinds == {"number", "string"}:
        return FormField(kind="duration", **common)
    if "array" in kinds and kinds <= {"array", "string"}:
        return FormField(kind="list", **common)
    if kinds == {"string"}:
        return FormField(kind="text", **common)
    return FormField(kind="json", **common)


def _sentence(text: str) -> str:
    """A schema description as help text: capitalised, with its full stop."""
    text = text.strip()
    if not text:
        return ""
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?", ")")) else ".")


def _kinds(prop: Mapping[str, Any]) -> set[str]:
    """The JSON types a property accepts, through ``oneOf``/``anyOf``."""
    if "type" in prop:
        kind = prop["type"]
        return set(kind) if isinstance(kind, list) else {str(kind)}
    found: set[str] = set()
    for option in [*prop.get("oneOf", ()), *prop.get("anyOf", ())]:
        found |= _kinds(option)
    return found


def _secret(prop: Mapping[str, Any]) -> bool:
    """Marked secret, as :mod:`dbnotify.serve.channel_file` reads the schema too."""
    return bool(prop.get("x-secret") or prop.get("writeOnly"))


def _secret_kinds(prop: Mapping[str, Any]) -> tuple[str, ...]:
    kinds: list[str] = []
    for option in prop.get("oneOf", ()):
        if option.get("type") == "string":
            kinds.append("value")
        for name in ("env", "file"):
            if name in option.get("properties", {}):
                kinds.append(name)
    return tuple(kinds) or ("value",)


def _text(value: Any) -> str:
    """A value of the block as the form shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def shown_values(fields: list[FormField], settings: Mapping[str, Any]) -> dict[str, str]:
    """A saved channel's values for its form; secrets never."""
    return {
        f.key: _text(settings[f.key])
        for f in fields
        if f.kind != "secret" and f.key in settings and settings[f.key] is not None
    }


def submitted_values(fields: list[FormField], form: Mapping[str, str]) -> dict[str, str]:
    """What the user typed, to show the form again; secrets never."""
    return {
        f.key: form.get(f"f.{f.key}", "")
        for f in fields
        if f.kind != "secret" and form.get(f"f.{f.key}")
    }


def read_block(
    fields: list[FormField], form: Mapping[str, str]
) -> tuple[dict[str, Any], list[Problem]]:
    """The channel's keys from the form's ``f.<key>`` fields (empty: left out, so the
    default applies), and a problem for each value that is not of its field's kind."""
    block: dict[str, Any] = {}
    problems: list[Problem] = []
    for field in fields:
        raw = form.get(f"f.{field.key}", "").strip()
        if not raw:
            continue
        try:
            block[field.key] = _value(field, raw, form.get(f"k.{field.key}", "value"))
        except ValueError as exc:
            shown = None if field.kind == "secret" else raw
            problems.append(Problem(field.key, str(exc), shown))
    return block, problems


def _value(field: FormField, raw: str, given_as: str) -> Any:
    if field.kind == "secret":
        if given_as not in field.options:
            raise ValueError(f"give it as one of: {', '.join(field.options)}")
        if field.many:
            return [part if given_as == "value" else {given_as: part} for part in raw.split()]
        return raw if given_as == "value" else {given_as: raw}
    if field.kind == "select":
        if raw not in field.options:
            raise ValueError(f"choose one of: {', '.join(field.options)}")
        return raw
    if field.kind == "bool":
        if raw not in ("true", "false"):
            raise ValueError("choose yes or no")
        return raw == "true"
    if field.kind == "integer":
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise ValueError("a whole number, e.g. 587")
        return int(raw)
    if field.kind in ("number", "duration"):
        try:
            number = float(raw)
        except ValueError:
            if field.kind == "duration":
                return raw
            raise ValueError("a number, e.g. 30 or 2.5") from None
        if not math.isfinite(number):
            raise ValueError("a finite number, e.g. 30")
        return int(number) if number.is_integer() and "." not in raw else number
    if field.kind == "list":
        return [part.strip() for part in _LIST_SPLIT.split(raw) if part.strip()]
    if field.kind == "json":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f'JSON, e.g. {{"X-Team": "ops"}} ({exc.msg})') from None
    return raw
