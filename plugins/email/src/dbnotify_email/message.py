"""Building the MIME message: rendered once, headers safe, recipients explicit."""

from __future__ import annotations

import email.utils
import re
from email.message import EmailMessage
from email.policy import SMTP

from dbnotify.events import Notification
from dbnotify.rendering import Renderer
from dbnotify_email.addresses import Mailbox

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_BROKEN_FOLD = re.compile(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")
"""A line break in a folded header that is not folding: a new header would begin."""


def header_safe(name: str, value: str) -> str:
    """Refuse CR, LF, NUL and other controls in a header value; defuse encoded words.

    CPython before 3.11.15/3.12.13/3.13.12 can turn an encoded newline into a real header
    (CVE-2024-6923, CVE-2026-1299): never rely on the email package alone.
    """
    if _UNSAFE.search(value):
        raise ValueError(f"header {name} would contain a control character")
    # The email package decodes RFC 2047 words it finds in the text it is given:
    # "=?UTF-8?Q?=0A?=Bcc: x" becomes a line break, which the same vulnerable versions then
    # write out unquoted. Break the "=?" so the text stays text.
    return value.replace("=?", "= ?")


def check_headers(msg: EmailMessage) -> None:
    """The backstop: every header, as it will be written, is one header.

    Envelope addresses are ASCII (see :class:`Mailbox`), so aiosmtplib writes the message
    with the SMTP policy: the one folded with here.
    """
    for name, value in msg.items():
        folded = SMTP.fold(name, value)
        if _BROKEN_FOLD.search(folded.removesuffix("\r\n")):
            raise ValueError(f"header {name} would break into a second header")


def message_id(notification: Notification, sender: Mailbox, *, user_copy: bool) -> str:
    """Stable per notification and target, so that a resend is recognisable."""
    suffix = ".user" if user_copy else ""
    return f"<{notification.id}{suffix}@{sender.domain}>"


def build(
    notification: Notification,
    renderer: Renderer,
    *,
    sender: Mailbox,
    to: tuple[Mailbox, ...],
    user_copy: bool = False,
) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = header_safe("Subject", renderer.subject(notification))
    msg["From"] = sender.header
    msg["To"] = [m.header for m in to]
    msg["Date"] = email.utils.format_datetime(notification.timestamp)
    msg["Message-ID"] = message_id(notification, sender, user_copy=user_copy)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg["X-DBackup-Event"] = header_safe("X-DBackup-Event", notification.event_type)
    msg.set_content(renderer.text(notification), cte="quoted-printable")
    msg.add_alternative(renderer.html(notification), subtype="html", cte="quoted-printable")
    check_headers(msg)
    return msg
