"""The Telegram channel's configuration block."""

from __future__ import annotations

import enum
import re
from typing import Any, NewType
from urllib.parse import urlsplit

import attrs

from dbnotify.channel import Secret, describe_value, make_converter, positive, setting
from dbnotify.http import api_url

DEFAULT_API = "https://api.telegram.org"


class ParseMode(enum.Enum):
    NONE = "none"
    """Plain text: the renderer's text as it is."""
    HTML = "HTML"
    MARKDOWN_V2 = "MarkdownV2"

    @property
    def api_value(self) -> str | None:
        """What ``sendMessage`` gets as ``parse_mode`` (nothing for plain text)."""
        return None if self is ParseMode.NONE else self.value


def _parse_mode(value: Any, _cl: Any) -> ParseMode:
    """Like the core's enum hook, but case-insensitive: ``html`` is ``HTML``."""
    if isinstance(value, ParseMode):
        return value
    choices = [m.value for m in ParseMode]
    if isinstance(value, str):
        for mode in ParseMode:
            if value.strip().lower() == mode.value.lower():
                return mode
    hint = ""
    if isinstance(value, str) and value.strip().lower() in ("markdown", "md"):
        hint = "; Telegram's legacy Markdown is not supported: use 'MarkdownV2' (or 'HTML')"
    raise ValueError(f"must be one of {', '.join(choices)} (got {describe_value(value)})" + hint)


ChatId = NewType("ChatId", str)
"""A chat's numeric id (``-1001234567890``, as text) or a public ``@username``."""

_NUMERIC = re.compile(r"-?[0-9]{1,20}")
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{4,31}")
_CHAT_PROBLEM = "must be a chat's numeric id (e.g. -1001234567890) or a public channel's @username"


def _chat_id(value: Any, _cl: Any) -> ChatId:
    if isinstance(value, int) and not isinstance(value, bool):
        if value == 0:
            raise ValueError(f"{_CHAT_PROBLEM} (got 0)")
        return ChatId(str(value))
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC.fullmatch(text) and int(text) != 0:
            return ChatId(str(int(text)))
        if _USERNAME.fullmatch(text):
            return ChatId(text)
        link = re.fullmatch(r"(?:https?://)?t\.me/([A-Za-z][A-Za-z0-9_]{4,31})/?", text)
        if link:
            raise ValueError(f"{_CHAT_PROBLEM} (got a link); did you mean {'@' + link[1]!r}?")
        if _USERNAME.fullmatch("@" + text):
            raise ValueError(
                f"{_CHAT_PROBLEM} (got {describe_value(value)}); did you mean {'@' + text!r}?"
            )
    raise ValueError(f"{_CHAT_PROBLEM} (got {describe_value(value)})")


CONVERTER = make_converter()
"""This channel's own converter: the core's hooks, and these for its own types."""
CONVERTER.register_structure_hook(ParseMode, _parse_mode)
CONVERTER.register_structure_hook(ChatId, _chat_id)


_BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")


def _bot_token(_inst: Any, _attr: Any, value: Secret) -> None:
    """The shape @BotFather gives (``123456789:AAE...``); the value is never echoed."""
    token = value.reveal()
    if _BOT_TOKEN.fullmatch(token):
        return
    if token.startswith("bot") and _BOT_TOKEN.fullmatch(token[3:]):
        raise ValueError("starts with 'bot': give the token alone, without that prefix")
    raise ValueError(
        "does not look like a bot token: digits, a colon, then at least 20 letters, digits, "
        f"'-' or '_', as @BotFather gives it ({value.source}; the value is not shown)"
    )


_api_url = api_url("https://api.telegram.org")


def http_url(inst: Any, attr: Any, value: str) -> None:
    """An http(s) URL with a host, nothing that could carry a credential, and no token."""
    _api_url(inst, attr, value)
    parts = urlsplit(value)
    if "/bot" in parts.path:
        raise ValueError(
            "must be the server alone (e.g. https://api.telegram.org): the token goes in "
            "bot_token, never in the URL"
        )


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


@attrs.frozen
class TelegramConfig:
    bot_token: Secret = setting(
        validator=_bot_token,
        description="the bot's token, from @BotFather",
        example='{ env = "TELEGRAM_BOT_TOKEN" }',
    )
    chat_id: ChatId = setting(
        description="the chat's numeric id, or a public channel's @username",
        example="-1001234567890",
    )
    parse_mode: ParseMode = setting(
        default=ParseMode.HTML, description="none | HTML | MarkdownV2: how the text is marked up"
    )
    disable_notification: bool = setting(
        default=False, description="deliver silently (no sound on the recipients' phones)"
    )
    api_url: str = setting(
        default=DEFAULT_API,
        validator=http_url,
        converter=_strip_slash,
        description="the Bot API server (a self-hosted one, or a test server)",
    )
    timeout: float = setting(
        default=15.0, validator=positive, description="seconds to wait for the server"
    )

    @property
    def chat(self) -> int | str:
        """``chat_id`` as the Bot API takes it: a number, or the @username."""
        return self.chat_id if self.chat_id.startswith("@") else int(self.chat_id)
