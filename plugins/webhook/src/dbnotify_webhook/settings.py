"""The generic webhook channel's configuration block."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from dbnotify.channel import (
    ConfigError,
    ConfigIssue,
    InvalidField,
    Secret,
    describe_value,
    make_converter,
    setting,
)
from dbnotify.http import check_url, where
from dbnotify_webhook import payload


class Method(enum.Enum):
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"


def _method(value: Any, _cl: Any) -> Method:
    """POST, PUT or PATCH, in any case; GET and DELETE carry no body, so no notification."""
    if isinstance(value, Method):
        return value
    choices = ", ".join(m.value for m in Method)
    if isinstance(value, str):
        word = value.strip().upper()
        if word in Method.__members__:
            return Method[word]
        if word in {"GET", "HEAD", "DELETE", "OPTIONS"}:
            raise ValueError(
                f"must be one of {choices} (got {describe_value(value)}): the notification "
                f"travels in the request's body, and a {word} request has none"
            )
    raise ValueError(f"must be one of {choices} (got {describe_value(value)})")


# --- headers --------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\x20-\x7e\t]*")

FORBIDDEN_HEADERS: dict[str, str] = {
    "host": "set by the URL",
    "content-length": "computed from the body",
    "transfer-encoding": "chosen by the HTTP client",
    "connection": "managed by the HTTP client",
    "content-type": "set content_type instead",
    "authorization": "set auth_header instead (it is kept secret)",
}


def header_value_problem(value: str) -> str | None:
    if "\r" in value or "\n" in value:
        return "must not contain CR or LF (a header value is one line)"
    if not _VALUE.fullmatch(value):
        return "must be printable ASCII (letters, digits, punctuation, spaces)"
    return None


@attrs.frozen
class Headers:
    """Extra request headers, in the order written; values may be secrets."""

    items: tuple[tuple[str, str | Secret], ...] = ()

    def __iter__(self) -> Iterator[tuple[str, str | Secret]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Headers({', '.join(name for name, _ in self.items)})"


def _headers(value: Any, _cl: Any) -> Headers:
    if isinstance(value, Headers):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(
            f'must be a table of header names and values, e.g. {{ "X-Source" = "dbackup" }} '
            f"(got {describe_value(value)})"
        )
    issues: list[ConfigIssue] = []
    seen: dict[str, str] = {}
    items: list[tuple[str, str | Secret]] = []
    for raw_name, raw_value in value.items():
        name = str(raw_name)
        lower = name.lower()
        if "\r" in name or "\n" in name:
            issues.append(ConfigIssue(repr(name), "a header name must not contain CR or LF"))
            continue
        if not _TOKEN.fullmatch(name):
            issues.append(
                ConfigIssue(
                    name,
                    "not a valid header name (letters, digits and ! # $ % & ' * + - . ^ _ ` | ~)",
                )
            )
            continue
        if lower in FORBIDDEN_HEADERS:
            issues.append(ConfigIssue(name, f"cannot be set here: {FORBIDDEN_HEADERS[lower]}"))
            continue
        if lower in seen:
            issues.append(ConfigIssue(name, f"given twice (also as {seen[lower]!r})"))
            continue
        seen[lower] = name
        header: str | Secret
        if isinstance(raw_value, str):
            header = raw_value
        elif isinstance(raw_value, Mapping):
            try:
                header = CONVERTER.structure(raw_value, Secret)
            except ValueError as exc:
                issues.append(ConfigIssue(name, str(exc)))
                continue
        else:
            issues.append(
                ConfigIssue(
                    name,
                    'must be a string, { env = "NAME" } or { file = "/path" } '
                    f"(got {describe_value(raw_value)})",
                )
            )
            continue
        problem = header_value_problem(header.reveal() if isinstance(header, Secret) else header)
        if problem:
            issues.append(ConfigIssue(name, problem))
            continue
        items.append((name, header))
    if issues:
        raise ConfigError(issues)
    return Headers(tuple(items))


HEADERS_SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": "^" + _TOKEN.pattern + "$"},
    "additionalProperties": {
        "oneOf": [
            {"type": "string", "pattern": "^" + _VALUE.pattern + "$"},
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
        ]
    },
}
"""How :class:`Headers` are written, for ``dbnotify schema``."""

CONVERTER = make_converter()
"""This channel's own converter: the core's hooks, and these for its own types."""
CONVERTER.register_structure_hook(Method, _method)
CONVERTER.register_structure_hook(Headers, _headers)


# --- content type ---------------------------------------------------------------------

_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")


CONTENT_TYPE_SCHEMA = {
    "type": "string",
    "pattern": r"^[ \t]*" + _MEDIA_TYPE.pattern + r"[ \t]*(;[\t\x20-\x7e]*)?$",
    "not": {"pattern": "\n"},  # Python's $ also matches before a final line break
}
"""What :func:`_content_type` accepts, for ``dbnotify schema``."""


def _content_type(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    problem = header_value_problem(value)
    if problem:
        raise ValueError(problem)
    if not _MEDIA_TYPE.fullmatch(value.split(";", 1)[0].strip()):
        raise ValueError(
            "must be a media type such as application/json or text/plain; charset=utf-8 "
            f"(got {describe_value(value)})"
        )


def is_json(content_type: str) -> bool:
    """``application/json``, ``application/problem+json`` ...: the body must parse as JSON."""
    subtype = content_type.split(";", 1)[0].strip().lower().partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def _auth_header(_inst: Any, _attr: attrs.Attribute[Any], value: Secret | None) -> None:
    if value is None:
        return
    revealed = value.reveal()
    if not revealed.strip():
        raise ValueError("must not be empty")
    problem = header_value_problem(revealed)
    if problem:
        raise ValueError(problem)


# --- the block ------------------------------------------------------------------------


@attrs.frozen(repr=False)
class WebhookConfig:
    webhook_url: Secret = setting(
        validator=check_url,
        description="the endpoint's URL, a secret: URLs often carry a token",
        example='{ env = "DBACKUP_WEBHOOK_URL" }',
    )
    method: Method = setting(default=Method.POST, description="POST | PUT | PATCH")
    content_type: str = setting(
        default="application/json",
        validator=_content_type,
        description="the body's media type; a JSON type makes the payload checked as JSON",
        schema=CONTENT_TYPE_SCHEMA,
    )
    auth_header: Secret | None = setting(
        default=None,
        validator=_auth_header,
        description='the Authorization header, e.g. "Bearer <token>" (secret)',
    )
    headers: Headers = setting(
        factory=Headers,
        description="extra request headers (values may be secrets)",
        schema=HEADERS_SCHEMA,
    )
    payload: str | None = setting(
        default=None,
        description="a Jinja template for the body (default: a JSON object with the notification)",
    )

    def __attrs_post_init__(self) -> None:
        if self.payload is not None:
            problem = payload.template_problem(self.payload, as_json=self.json)
            if problem:
                raise InvalidField("payload", problem)

    @property
    def json(self) -> bool:
        return is_json(self.content_type)

    def request_headers(self) -> dict[str, str | Secret]:
        found: dict[str, str | Secret] = {"Content-Type": self.content_type}
        if self.auth_header is not None:
            found["Authorization"] = self.auth_header
        found.update(self.headers)
        return found

    def __repr__(self) -> str:
        shown: dict[str, Any] = {
            "webhook_url": where(self.webhook_url.reveal()),
            "method": self.method.value,
            "content_type": self.content_type,
            "auth_header": "set" if self.auth_header is not None else None,
            "headers": [name for name, _ in self.headers],
            "payload": "template" if self.payload is not None else "default",
        }
        return "WebhookConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
