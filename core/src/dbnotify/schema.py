"""JSON Schema of a channel's configuration, for hosts that draw their own forms.

Built from the attrs config class: types, defaults, required keys, choices,
descriptions, the limits that the core's validators carry (``in_range`` as
``minimum``/``maximum``), and which fields are secret (``"writeOnly": true, "x-secret":
true``).
A field whose type is the plugin's own (an email address, a table of headers) carries
its schema in the class: ``setting(..., schema={...})``. There is no registry, so what
this module prints depends on the config class alone, never on what was imported.
"""

from __future__ import annotations

import copy
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

from dbnotify.config.fields import DURATION_SCHEMA, Duration, file_key, validator_schema
from dbnotify.hookspecs import ChannelInfo
from dbnotify.secrets import Secret

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"

_SECRET: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {"env": {"type": "string"}},
            "required": ["env"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"file": {"type": "string"}},
            "required": ["file"],
            "additionalProperties": False,
        },
    ],
    "writeOnly": True,
    "x-secret": True,
}

_CORE_TYPES: Mapping[Any, dict[str, Any]] = types.MappingProxyType(
    {
        Secret: _SECRET,
        Duration: dict(DURATION_SCHEMA),
    }
)
"""The core's own types that cannot be derived from a Python type; read-only."""


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_json_default(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_default(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool):
        return value
    return None


def _type_schema(tp: Any) -> dict[str, Any]:
    if tp in _CORE_TYPES:
        return copy.deepcopy(_CORE_TYPES[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return (
            _type_schema(kinds[0])
            if len(kinds) == 1
            else {"anyOf": [_type_schema(k) for k in kinds]}
        )
    if origin is tuple or origin is list:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if hasattr(tp, "__supertype__"):  # NewType
        return _type_schema(tp.__supertype__)
    if attrs.has(tp):
        return object_schema(tp)
    return {}


_KEYWORD_TYPES = {
    "minLength": {"string"},
    "minItems": {"array"},
    "minProperties": {"object"},
    "minimum": {"number", "integer"},
    "maximum": {"number", "integer"},
    "exclusiveMinimum": {"number", "integer"},
}


def _applicable(schema: Mapping[str, Any], keywords: Mapping[str, Any]) -> dict[str, Any]:
    """A validator's keywords (``non_empty`` gives minLength, minItems and minProperties)
    less those that cannot apply to a value of the schema's one ``type``: noise in a form."""
    kind = schema.get("type")
    if not isinstance(kind, str):
        return dict(keywords)
    return {k: v for k, v in keywords.items() if kind in _KEYWORD_TYPES.get(k, {kind})}


def object_schema(cls: type) -> dict[str, Any]:
    attrs.resolve_types(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        key = file_key(field)
        given = field.metadata.get("schema")
        schema = copy.deepcopy(dict(given)) if given is not None else _type_schema(field.type)
        schema.update(_applicable(schema, validator_schema(field.validator)))
        if field.metadata.get("description"):
            schema["description"] = field.metadata["description"]
        if field.default is attrs.NOTHING:
            required.append(key)
        else:
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            value = _json_default(default)
            if value is not None and value != [] and value != {}:
                schema["default"] = value
        properties[key] = schema
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        result["required"] = required
    return result


def channel_schema(channel_type: str, info: ChannelInfo) -> dict[str, Any]:
    """The whole block of ``[channels.NAME]`` for this channel type, ``type`` included.

    A required key that ``validate_config`` can fill in (``info.supplied``) is required
    only in the blocks that do not supply it; ``info.schema_rules`` (the checks across
    keys) must hold too.
    """
    schema = object_schema(info.config_class)
    schema["properties"] = {
        "type": {"const": channel_type, "description": "the channel type"},
        **schema["properties"],
        **info.extra_options,
    }
    description = info.description
    required = [k for k in schema.get("required", []) if k not in info.supplied]
    schema["required"] = ["type", *required]
    rules = [
        {"if": copy.deepcopy(dict(when)), "else": {"required": [key]}}
        for key, when in info.supplied.items()
    ]
    rules += [copy.deepcopy(dict(rule)) for rule in info.schema_rules]
    if rules:
        schema["allOf"] = rules
    return {"$schema": SCHEMA_DRAFT, "title": channel_type, "description": description, **schema}
