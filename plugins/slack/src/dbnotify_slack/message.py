"""The message Slack receives: the subject as text, and one attachment in the severity's
colour with the title, the message and the fields.

Slack reads ``&``, ``<`` and ``>`` as control characters everywhere (``<!channel>``
notifies a whole channel, ``<https://x|click>`` is a link), so event data has them
escaped; ``mrkdwn`` is off, so ``*`` and ``_`` in a job name stay as typed.
"""

from __future__ import annotations

from typing import Any

from dbnotify.channel import Notification, Renderer

SHORT_FIELD = 40
"""A field shown half-width (``short``) when its value is one line of at most this many
characters; longer values (errors, user agents) get the full width."""


def escape(text: str) -> str:
    """Slack's three control characters as entities, as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(value: str) -> bool:
    return len(value) <= SHORT_FIELD and "\n" not in value


def message(
    notification: Notification,
    renderer: Renderer,
    *,
    channel: str | None,
    username: str | None,
    icon_emoji: str | None,
) -> dict[str, Any]:
    """The JSON body of the webhook request."""
    context = renderer.context(notification)
    subject = escape(renderer.subject(notification))
    body: dict[str, Any] = {"text": subject, "mrkdwn": False}
    for key, value in (("channel", channel), ("username", username), ("icon_emoji", icon_emoji)):
        if value is not None:
            body[key] = value
    attachment: dict[str, Any] = {
        "fallback": subject,
        "color": context["color"],
        "title": escape(context["title"]),
        "text": escape(context["message"]),
        "fields": [
            {"title": escape(label), "value": escape(value), "short": _short(value)}
            for label, value in context["fields"]
        ],
        "footer": escape(f"Sent by {context['app_name']}"),
        "ts": int(notification.timestamp.timestamp()),
    }
    body["attachments"] = [attachment]
    return body
