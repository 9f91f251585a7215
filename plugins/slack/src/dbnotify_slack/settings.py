"""The Slack channel's configuration block."""

from __future__ import annotations

import re
from typing import Any

import attrs

from dbnotify.channel import Secret, describe_value, setting
from dbnotify.http import check_url, where

_EMOJI = re.compile(r":[a-z0-9_+'-]+(?:::skin-tone-[2-6])?:")
_BARE_EMOJI = re.compile(r"[a-z0-9_+'-]+")
_NO_SPACE = re.compile(r"[^\s\x00-\x1f\x7f]+")


def _channel(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not _NO_SPACE.fullmatch(value) or len(value) > 81:
        raise ValueError(
            "must be a channel such as '#backups' or a channel ID such as 'C0123456789' "
            f"(no spaces, at most 80 characters; got {describe_value(value)})"
        )


def _username(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not value.strip():
        raise ValueError("must not be empty (leave it out to use the webhook's own name)")
    if len(value) > 80:
        raise ValueError(f"must be at most 80 characters (got {len(value)})")


def _icon_emoji(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None or _EMOJI.fullmatch(value):
        return
    hint = ""
    word = value.strip().strip(":").lower()
    if _BARE_EMOJI.fullmatch(word):
        hint = f"; did you mean ':{word}:'?"
    raise ValueError(
        f"must be an emoji code between colons, such as ':floppy_disk:' "
        f"(got {describe_value(value)}){hint}"
    )


@attrs.frozen(repr=False)
class SlackConfig:
    webhook_url: Secret = setting(
        validator=check_url,
        description="the incoming webhook's URL, a secret: it carries the webhook's token",
        example='{ env = "SLACK_WEBHOOK_URL" }',
    )
    channel: str | None = setting(
        default=None,
        validator=_channel,
        description="post to this channel instead of the webhook's (legacy webhooks only)",
    )
    username: str | None = setting(
        default=None,
        validator=_username,
        description="the name messages are posted under (legacy webhooks only)",
    )
    icon_emoji: str | None = setting(
        default=None,
        validator=_icon_emoji,
        description="the emoji messages are posted with, e.g. ':floppy_disk:' (legacy "
        "webhooks only)",
    )

    def __repr__(self) -> str:
        shown = {
            "webhook_url": where(self.webhook_url.reveal()),
            "channel": self.channel,
            "username": self.username,
            "icon_emoji": self.icon_emoji,
        }
        return "SlackConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
