"""The Discord channel's configuration block."""

from __future__ import annotations

from typing import Any

import attrs

from dbnotify.channel import Secret, describe_value, setting
from dbnotify.http import check_url, where

USERNAME_MAX = 80
_REFUSED_IN_NAMES = ("discord", "clyde")


def _username(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not value.strip():
        raise ValueError("must not be empty (leave it out to use the webhook's own name)")
    if len(value) > USERNAME_MAX:
        raise ValueError(f"must be at most {USERNAME_MAX} characters (got {len(value)})")
    for word in _REFUSED_IN_NAMES:
        if word in value.lower():
            raise ValueError(
                f"Discord refuses webhook names that contain {word!r} (got {describe_value(value)})"
            )


@attrs.frozen(repr=False)
class DiscordConfig:
    webhook_url: Secret = setting(
        validator=check_url,
        description="the webhook's URL, a secret: it carries the webhook's token",
        example='{ env = "DISCORD_WEBHOOK_URL" }',
    )
    username: str | None = setting(
        default=None,
        validator=_username,
        description="the name messages are posted under (default: the webhook's)",
    )
    avatar_url: str | None = setting(
        default=None,
        validator=check_url,
        description="URL of the picture messages are posted with (default: the webhook's)",
    )

    def __repr__(self) -> str:
        shown = {
            "webhook_url": where(self.webhook_url.reveal()),
            "username": self.username,
            "avatar_url": self.avatar_url,
        }
        return "DiscordConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
