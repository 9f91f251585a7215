"""The MessageCard an Office 365 Incoming Webhook connector receives.

Teams processes every text of a MessageCard as Markdown (and a little HTML); event data
is text, so its Markdown characters are escaped with a backslash and ``& < >`` written
as entities. A single newline means nothing in Markdown: each becomes a paragraph break,
so that an error's lines stay lines.

Teams refuses a card over about 28 KB (``413``): the message and each fact are cut
with an ellipsis well below that.
"""

from __future__ import annotations

import re
from typing import Any

from dbnotify.channel import Notification, Renderer

_MARKDOWN = re.compile(r"([\\`*_~#\[\]])")

TITLE_MAX = 256
TEXT_MAX = 10_000
FACT_NAME_MAX = 256
FACT_VALUE_MAX = 1_000
ELLIPSIS = "…"


def fit(text: str, limit: int) -> str:
    """``text``, or its start and an ellipsis, within ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def escape(text: str) -> str:
    """``text`` shown as typed in a MessageCard."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN.sub(r"\\\1", text)
    return re.sub(r"\r?\n", "\n\n", text)


def message_card(notification: Notification, renderer: Renderer) -> dict[str, Any]:
    """The JSON body of the webhook request."""
    context = renderer.context(notification)
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": context["color"].lstrip("#"),
        "summary": renderer.subject(notification),
        "title": escape(fit(context["title"], TITLE_MAX)),
        "text": escape(fit(context["message"], TEXT_MAX)),
    }
    facts = [
        {"name": escape(fit(label, FACT_NAME_MAX)), "value": escape(fit(value, FACT_VALUE_MAX))}
        for label, value in context["fields"]
    ]
    card["sections"] = [{"facts": facts}] if facts else []
    return card
