"""The Telegram message: the renderer's values, marked up, within Telegram's limit.

Every value comes from the renderer (``renderer.context`` or ``renderer.text``) and is
escaped for the parse mode: event data is text, never markup. Telegram counts at most
4096 characters after the markup is parsed, in UTF-16 code units; a longer message is
cut in its text (never inside a tag or an escape) and ends with an ellipsis.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

from dbnotify.channel import Notification, Renderer
from dbnotify_telegram.settings import ParseMode

LIMIT = 4096
ELLIPSIS = "…"

PLAIN, BOLD, ITALIC = "plain", "bold", "italic"
Piece = tuple[str, str]
"""(style, text): the text as the reader sees it."""

_MARKDOWN_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def units(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _prefix(text: str, room: int) -> str:
    """The longest start of ``text`` that is at most ``room`` UTF-16 units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > room:
            return text[:index]
    return text


def pieces(notification: Notification, renderer: Renderer) -> list[Piece]:
    """Bold title, the message, the fields as ``label: value``, an italic footer."""
    context = renderer.context(notification)
    found: list[Piece] = [(BOLD, context["title"])]
    if context["message"]:
        found += [(PLAIN, "\n\n"), (PLAIN, context["message"])]
    fields: Sequence[tuple[str, str]] = context["fields"]
    if fields:
        found.append((PLAIN, "\n"))
        for label, value in fields:
            found += [(PLAIN, "\n"), (BOLD, f"{label}:"), (PLAIN, f" {value}")]
    found += [(PLAIN, "\n\n"), (ITALIC, f"{context['timestamp']} · Sent by {context['app_name']}")]
    return found


def fit(found: Sequence[Piece], limit: int = LIMIT) -> list[Piece]:
    """``found`` cut to ``limit`` visible units, the last piece ending with an ellipsis."""
    if sum(units(text) for _style, text in found) <= limit:
        return list(found)
    room = limit - units(ELLIPSIS)
    kept: list[Piece] = []
    for style, text in found:
        size = units(text)
        if size <= room:
            kept.append((style, text))
            room -= size
            continue
        kept.append((style, _prefix(text, room) + ELLIPSIS))
        break
    return kept


def escape_markdown(text: str) -> str:
    """MarkdownV2: every special character is preceded by a backslash."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _html(style: str, text: str) -> str:
    escaped = html.escape(text, quote=False)
    return {BOLD: f"<b>{escaped}</b>", ITALIC: f"<i>{escaped}</i>"}.get(style, escaped)


def _markdown(style: str, text: str) -> str:
    escaped = escape_markdown(text)
    return {BOLD: f"*{escaped}*", ITALIC: f"_{escaped}_"}.get(style, escaped)


RENDER: dict[ParseMode, Callable[[str, str], str]] = {
    ParseMode.HTML: _html,
    ParseMode.MARKDOWN_V2: _markdown,
}


def message_text(notification: Notification, renderer: Renderer, mode: ParseMode) -> str:
    """The ``text`` of ``sendMessage`` for ``mode``."""
    if mode is ParseMode.NONE:
        found: list[Piece] = [(PLAIN, renderer.text(notification).rstrip("\n"))]
        return "".join(text for _style, text in fit(found))
    render = RENDER[mode]
    return "".join(render(style, text) for style, text in fit(pieces(notification, renderer)))
