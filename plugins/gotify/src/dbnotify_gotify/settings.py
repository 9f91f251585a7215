"""The Gotify channel's configuration block."""

from __future__ import annotations

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

DEFAULT_PRIORITY = 5


def http_url(_inst: Any, _attr: Any, value: str) -> None:
    """An http(s) URL with a host, and nothing that could carry a credential.

    A URL with a query or a user part is not echoed: it may hold a token.
    """
    risky = "?" in value or "@" in value or "#" in value
    shown = "" if risky else f" (got {describe_value(value)})"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(
            f'must be an http:// or https:// URL, e.g. "https://gotify.example.com"{shown}'
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f'must be an http:// or https:// URL, e.g. "https://gotify.example.com"{shown}'
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user or password; the token goes in app_token")
    if parts.query or parts.fragment:
        raise ValueError(
            "must not have a query (?...) or fragment (#...); the token goes in app_token, "
            "never in the URL"
        )


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


@attrs.frozen
class GotifyConfig:
    server_url: str = setting(
        description="the Gotify server's URL, http:// or https://",
        validator=http_url,
        converter=_strip_slash,
        example='"https://gotify.example.com"',
    )
    app_token: Secret = setting(
        validator=header_secret,
        description="an application token from Gotify's Apps page, sent as X-Gotify-Key",
        example='{ env = "GOTIFY_APP_TOKEN" }',
    )
    priority: int = setting(
        default=DEFAULT_PRIORITY,
        validator=in_range(0, 10),
        description="message priority, 0 to 10",
    )
    failure_priority: int | None = setting(
        default=None,
        validator=in_range(0, 10),
        description="priority of failures (default: 8, or priority if that is higher)",
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
        if self.failure_priority is not None:
            return self.failure_priority
        return max(8, self.priority)


SCHEMA_RULES = not_below("failure_priority", "priority", range(11), DEFAULT_PRIORITY)
""":meth:`GotifyConfig.__attrs_post_init__`'s check, for ``dbnotify schema``."""
