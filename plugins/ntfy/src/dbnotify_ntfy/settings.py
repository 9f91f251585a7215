"""The ntfy channel's configuration block."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import attrs

from dbnotify.channel import (
    InvalidField,
    Secret,
    describe_value,
    in_range,
    not_below,
    positive,
    setting,
)
from dbnotify.http import header_secret

DEFAULT_SERVER = "https://ntfy.sh"
DEFAULT_PRIORITY = 3
TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")


def http_url(_inst: Any, _attr: Any, value: str) -> None:
    """An http(s) URL with a host, and nothing that could carry a credential.

    A URL with a query or a user part is not echoed: it may hold a token.
    """
    risky = "?" in value or "@" in value or "#" in value
    shown = "" if risky else f" (got {describe_value(value)})"
    problem = f'must be an http:// or https:// URL, e.g. "https://ntfy.example.com"{shown}'
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(problem)
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user or password; the token goes in access_token")
    if parts.query or parts.fragment:
        raise ValueError(
            "must not have a query (?...) or fragment (#...); the topic goes in topic, "
            "the token in access_token"
        )


def _topic(_inst: Any, _attr: Any, value: str) -> None:
    if len(value) > 64:
        raise ValueError(f"must be at most 64 characters, as ntfy allows (got {len(value)})")
    if not TOPIC.fullmatch(value):
        raise ValueError(
            "must be 1 to 64 letters, digits, '-' or '_', as ntfy allows "
            f"(got {describe_value(value)})"
        )


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


@attrs.frozen
class NtfyConfig:
    topic: str = setting(
        validator=_topic,
        description="the topic to publish to",
        example='"dbackup-alerts"',
        # unanchored: Python's $ also matches before a final line break
        schema={
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "not": {"pattern": "[^-_A-Za-z0-9]"},
        },
    )
    server_url: str = setting(
        default=DEFAULT_SERVER,
        validator=http_url,
        converter=_strip_slash,
        description="the ntfy server (http:// or https://)",
    )
    access_token: Secret | None = setting(
        default=None,
        validator=header_secret,
        description="access token of a user allowed to publish (Authorization: Bearer)",
    )
    priority: int = setting(
        default=DEFAULT_PRIORITY, validator=in_range(1, 5), description="priority, 1 to 5"
    )
    failure_priority: int | None = setting(
        default=None,
        validator=in_range(1, 5),
        description="priority of failures (default: 5)",
    )
    timeout: float = setting(
        default=15.0, validator=positive, description="seconds to wait for the server"
    )

    def __attrs_post_init__(self) -> None:
        if self.failure_priority is not None and self.failure_priority < self.priority:
            raise InvalidField(
                "failure_priority",
                f"must be at least priority ({self.priority}): failures are raised, never "
                f"lowered (got {self.failure_priority})",
            )

    @property
    def effective_failure_priority(self) -> int:
        return 5 if self.failure_priority is None else self.failure_priority


SCHEMA_RULES = not_below("failure_priority", "priority", range(1, 6), DEFAULT_PRIORITY)
""":meth:`NtfyConfig.__attrs_post_init__`'s check, for ``dbnotify schema``."""
