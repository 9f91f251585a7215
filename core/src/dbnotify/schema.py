"""JSON Schema of a channel's configuration, for hosts that draw their own forms.

Built from the attrs config class: types, defaults, required keys, choices,
descriptions, and which fields are secret (``"writeOnly": true, "x-secret": true``).
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

from dbnotify.config.fields import Duration, file_key
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
        Duration: {
            "oneOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhd]\s*$"},
            ]
        },
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
    """The whole block of ``[channels.NAME]`` for this channel type, ``type`` included."""
    schema = object_schema(info.config_class)
    schema["properties"] = {
        "type": {"const": channel_type, "description": "the channel type"},
        **schema["properties"],
        **info.extra_options,
    }
    description = info.description
    schema["required"] = ["type", *schema.get("required", [])]
    return {"$schema": SCHEMA_DRAFT, "title": channel_type, "description": description, **schema}
