"""The OpenAPI 3.1 document, drawn from the route table and its attrs classes.

Request bodies are described as the configuration's classes are (:func:`dbnotify.schema.
object_schema`: a ``None`` default means "leave it out"); replies as what the server
writes (every field present, ``null`` where a value is absent). Each channel type's
configuration schema is the one ``dbnotify schema TYPE`` prints, under
``components.schemas`` as ``channel.TYPE``.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import itertools
import re
import textwrap
import types
import typing
from collections.abc import Iterable
from typing import Any

import attrs

from dbnotify.config.model import Scope
from dbnotify.plugins import PluginRegistry
from dbnotify.schema import channel_schema, object_schema
from dbnotify.serve.endpoints import Endpoint
from dbnotify.serve.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details: every error the API gives",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "always `about:blank`"},
        "title": {"type": "string", "description": "the status's phrase"},
        "status": {"type": "integer", "description": "the HTTP status"},
        "detail": {"type": "string", "description": "what went wrong"},
        "errors": {
            "type": "array",
            "description": "each thing wrong with the request",
            "items": {
                "type": "object",
                "required": ["field", "value", "fix"],
                "properties": {
                    "field": {
                        "type": ["string", "null"],
                        "description": "where: a dotted path into the body "
                        "(`data.job_name`), a header or a parameter",
                    },
                    "value": {
                        "type": ["string", "null"],
                        "description": "what was given, shortened; `null` when absent or "
                        "when it may be a secret",
                    },
                    "fix": {"type": "string", "description": "what to do about it"},
                },
            },
        },
    },
}


class _Components:
    """Named schemas of the reply classes, each written once and referred to by $ref."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}

    def reply(self, tp: Any) -> dict[str, Any]:
        if isinstance(tp, dict):
            return tp
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            kinds = [self.reply(a) for a in args if a is not type(None)]
            some = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
            return {"anyOf": [some, {"type": "null"}]} if type(None) in args else some
        if origin in (list, tuple):
            return {"type": "array", "items": self.reply(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.reply(args[1])}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
        if tp in simple:
            return {"type": simple[tp]}
        if tp is Any:
            return {}
        if attrs.has(tp):
            name = tp.__name__
            if name not in self.schemas:
                self.schemas[name] = {}  # recursion guard
                attrs.resolve_types(tp)
                fields = attrs.fields(tp)
                docs = field_docs(tp)
                properties = {}
                for f in fields:
                    schema = self.reply(f.type)
                    if f.name in docs:
                        schema = {**schema, "description": docs[f.name]}
                    properties[f.alias.rstrip("_")] = schema
                self.schemas[name] = {
                    "type": "object",
                    "required": [f.alias.rstrip("_") for f in fields],
                    "properties": properties,
                }
                if tp.__doc__ and not tp.__doc__.startswith(f"{name}("):
                    self.schemas[name]["description"] = _one_line(tp.__doc__)
            return {"$ref": f"#/components/schemas/{name}"}
        return {}


def _one_line(text: str) -> str:
    """A docstring as one line of Markdown (reST's ``code`` becomes `code`)."""
    return " ".join(inspect.cleandoc(text).split()).replace("``", "`")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under an attrs class's fields (a string on the line after
    ``name: str``), by field name: what a reply's fields mean, in the document."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for field, after in itertools.pairwise(body):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[field.target.id] = _one_line(after.value.value)
    return found


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


_DESCRIPTIONS = {
    400: "the body is not JSON (or not UTF-8, or nested too deeply)",
    401: "no token, or an unknown one",
    403: "the token lacks the scope",
    404: "not found",
    409: "conflicts with what exists, or with a request still running (the same Idempotency-Key)",
    413: "the body is larger than [serve] max_body",
    415: "the body is not `application/json`",
    422: "a field is invalid: each error names it, the value and the fix",
    503: "the outbox cannot be reached now: try again after `Retry-After` seconds",
}


def _operation(endpoint: Endpoint, components: _Components) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "tags": [endpoint.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    parameters += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in endpoint.params
    ]
    parameters += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
        for name, text in endpoint.headers
    ]
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": object_schema(endpoint.body)}},
        }
    ok: dict[str, Any] = {"description": "success"}
    if endpoint.reply is not None:
        ok["content"] = {"application/json": {"schema": components.reply(endpoint.reply)}}
    responses: dict[str, Any] = {str(endpoint.status): ok}
    for status in endpoint.also:
        responses[str(status)] = ok
    errors = set(endpoint.errors)
    if endpoint.scope is not None:
        errors |= {401, 403}
        operation["security"] = [{"bearer": []}]
        operation["x-scope"] = endpoint.scope.value
        operation["description"] = f"Needs a token with the `{endpoint.scope.value}` scope" + (
            " (or `admin`)." if endpoint.scope is not Scope.ADMIN else "."
        )
    else:
        operation["description"] = "Public: no token needed."
    if endpoint.body is not None:
        errors |= {400, 413, 415, 422}
    if endpoint.params:
        errors |= {422}  # a query parameter's value refused
    for status in sorted(errors):
        responses[str(status)] = _problem(_DESCRIPTIONS.get(status, "error"))
    operation["responses"] = responses
    return operation


def openapi_document(endpoints: Iterable[Endpoint], plugins: PluginRegistry) -> dict[str, Any]:
    """The whole document, with each installed channel type's schema."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        if endpoint.in_schema:
            paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
                endpoint, components
            )
    for plugin in plugins.all():
        schema = channel_schema(plugin.type, plugin.info)
        schema.pop("$schema", None)
        components.schemas[f"channel.{plugin.type}"] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dbnotify",
            "version": "1",
            "description": "DBackup's notifications over HTTP: send events, read what "
            "happened to each, manage channels. Errors are RFC 9457 problem details. "
            "Each installed channel type's configuration block is described under "
            "components.schemas as channel.TYPE: the very JSON Schema `dbnotify schema "
            "TYPE` prints (without its $schema).",
        },
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from [serve.tokens] of the configuration; "
                    "x-scope names the scope an operation needs (admin allows all)",
                }
            },
        },
    }
