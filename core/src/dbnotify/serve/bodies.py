"""Request bodies in, JSON replies out.

A body is read up to ``[serve] max_body`` bytes (more: 413, before it is all read),
parsed as JSON (400 with the position when it is not), and structured into an attrs
class by the configuration's own structuring (:func:`dbnotify.config.structure.structure`),
so that the API and the TOML file report a bad field in the same words (422, every
field at once).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
from starlette.requests import Request
from starlette.responses import Response

from dbnotify.config.structure import structure
from dbnotify.errors import ConfigError
from dbnotify.secrets import Secret
from dbnotify.serve.problems import PROBLEM_JSON, ApiError, Problem, problem_body, shown_value

T = TypeVar("T")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"request body too large: more than {limit} bytes",
        [Problem(None, f"send at most {limit} bytes, or raise [serve] max_body", f"{size} bytes")],
    )


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON; 415 for another content type, 400 when it does not parse."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise ApiError(
            415,
            f"unsupported content type {kind!r}",
            [Problem("Content-Type", "send JSON with Content-Type: application/json", kind)],
        )
    raw = await read_body(request, limit)
    try:
        return json.loads(raw, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno} column {exc.colno}: {exc.msg}"
    except UnicodeDecodeError:
        where = ": it is not UTF-8"
    except RecursionError:
        where = ": it is nested too deeply"
    except ValueError as exc:  # NaN, or an integer of more than 4300 digits
        where = f": {exc}" if isinstance(exc, _NotJson) else ": a number has too many digits"
    raise ApiError(400, f"the body is not valid JSON{where}", [Problem(None, "send a JSON object")])


class _NotJson(ValueError):
    pass


def _not_json(name: str) -> Any:
    """Python's json reads NaN and Infinity; JSON has no such numbers."""
    raise _NotJson(f"{name} is not a JSON number")


async def read_model(request: Request, cls: type[T], limit: int) -> T:
    """The body structured into ``cls``; 422 naming every bad field."""
    data = await read_json(request, limit)
    if not isinstance(data, Mapping):
        raise ApiError(422, "the body must be a JSON object", [Problem(None, "send a JSON object")])
    return structure_or_422(cls, data)


def structure_or_422(cls: type[T], data: Mapping[str, Any]) -> T:
    """``data`` as ``cls``, or a 422 with each issue as a problem."""
    try:
        return structure(cls, data)
    except ConfigError as exc:
        raise invalid(exc, data) from None


def invalid(exc: ConfigError, data: Any = None, *, detail: str = "invalid request") -> ApiError:
    """A 422 from configuration issues; each names its field, the value given (never a
    secret's) and the fix."""
    return ApiError(
        422,
        detail,
        [
            Problem(i.path or None, i.message, shown_value(i.path, value_at(data, i.path)))
            for i in exc.issues
        ],
    )


def value_at(data: Any, path: str) -> Any:
    """The value at a dotted path (``a.b[2].c``) of ``data``, or ``None``."""
    current = data
    for part in path.replace("]", "").replace("[", ".").split("."):
        if not part:
            continue
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current if current is not data else None


def unstructure(value: Any) -> Any:
    """JSON-ready data from attrs classes, enums, tuples and mappings (no secret can be
    reached: :class:`~dbnotify.secrets.Secret` is not an attrs class, and is written as
    whether it is set)."""
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return {f.alias.rstrip("_"): unstructure(getattr(value, f.name)) for f in fields}
    if isinstance(value, Mapping):
        return {str(k): unstructure(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [unstructure(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Secret):
        return {"set": True}
    return value


class JsonReply(Response):
    """A JSON reply; compact, UTF-8."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(unstructure(content), ensure_ascii=False, separators=(",", ":")).encode()


def problem_reply(error: ApiError) -> Response:
    reply = JsonReply(error.body(), status_code=error.status, headers=error.headers)
    reply.headers["content-type"] = PROBLEM_JSON
    return reply


def problem(status: int, detail: str, problems: tuple[Problem, ...] = ()) -> Response:
    reply = JsonReply(problem_body(status, detail, problems), status_code=status)
    reply.headers["content-type"] = PROBLEM_JSON
    return reply
