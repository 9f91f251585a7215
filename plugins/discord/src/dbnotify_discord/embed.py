"""The message Discord receives: one embed, within Discord's limits.

Discord renders Markdown in an embed's description and fields; event data is text, so
its Markdown characters are escaped there. Limits are counted as Discord counts them
(UTF-16 code units), and text over a limit is cut with an ellipsis.
"""

from __future__ import annotations

import re
from typing import Any

from dbnotify.channel import Notification, Renderer

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
"""Title, description, field names and values, and footer together."""
DESCRIPTION_KEPT = 200
"""The description keeps at least this much when the total is over: fields go first."""

ELLIPSIS = "…"
EMPTY = "\u200b"
"""Discord refuses an empty field name or value: a zero-width space stands in."""

_INLINE = re.compile(r"([\\*_~`|\[\]<])")
_LINE_START = re.compile(r"^(\s*)([#>-])", re.MULTILINE)


def escape(text: str) -> str:
    """Discord Markdown shown as typed: ``**not bold**``, ``[no](link)``, ``# no heading``."""
    return _LINE_START.sub(r"\1\\\2", _INLINE.sub(r"\\\1", text))


def units(text: str) -> int:
    """Length as Discord counts it (UTF-16 code units: an emoji may count 2)."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    """``text``, or its start and an ellipsis, within ``limit`` units."""
    if units(text) <= limit:
        return text
    budget = limit - units(ELLIPSIS)
    kept: list[str] = []
    used = 0
    for char in text:
        size = units(char)
        if used + size > budget:
            break
        kept.append(char)
        used += size
    cut = "".join(kept)
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:  # never end on the first half of an escape
        cut = cut[:-1]
    return cut + ELLIPSIS


def _total(embed: dict[str, Any]) -> int:
    total = units(embed["title"]) + units(embed.get("description", ""))
    total += sum(units(f["name"]) + units(f["value"]) for f in embed["fields"])
    return total + units(embed["footer"]["text"])


def _fields(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    shown = pairs if len(pairs) <= FIELDS_MAX else pairs[: FIELDS_MAX - 1]
    fields = [
        {
            "name": fit(escape(label), FIELD_NAME_MAX) or EMPTY,
            "value": fit(escape(value), FIELD_VALUE_MAX) or EMPTY,
            "inline": True,
        }
        for label, value in shown
    ]
    if len(pairs) > len(shown):
        fields.append(
            {
                "name": ELLIPSIS,
                "value": f"{len(pairs) - len(shown)} more not shown",
                "inline": False,
            }
        )
    return fields


def embed(notification: Notification, renderer: Renderer) -> dict[str, Any]:
    """The notification as one embed (see the module's docstring for the limits)."""
    context = renderer.context(notification)
    result: dict[str, Any] = {"title": fit(context["title"], TITLE_MAX)}
    description = fit(escape(context["message"]), DESCRIPTION_MAX)
    if description:
        result["description"] = description
    result["color"] = int(context["color"].lstrip("#"), 16)
    result["fields"] = _fields(list(context["fields"]))
    result["timestamp"] = context["timestamp_iso"]
    result["footer"] = {"text": fit(f"Sent by {context['app_name']}", FOOTER_MAX)}
    over = _total(result) - EMBED_TOTAL_MAX
    if over > 0 and "description" in result:
        length = units(result["description"])
        result["description"] = fit(result["description"], max(DESCRIPTION_KEPT, length - over))
    while _total(result) > EMBED_TOTAL_MAX and result["fields"]:
        result["fields"].pop()
    over = _total(result) - EMBED_TOTAL_MAX
    if over > 0 and "description" in result:
        result["description"] = fit(
            result["description"], max(1, units(result["description"]) - over)
        )
    return result


def message(
    notification: Notification,
    renderer: Renderer,
    *,
    username: str | None,
    avatar_url: str | None,
) -> dict[str, Any]:
    """The JSON body of the webhook request."""
    body: dict[str, Any] = {}
    if username is not None:
        body["username"] = username
    if avatar_url is not None:
        body["avatar_url"] = avatar_url
    body["embeds"] = [embed(notification, renderer)]
    body["allowed_mentions"] = {"parse": []}
    return body
