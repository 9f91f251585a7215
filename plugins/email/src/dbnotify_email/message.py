"""Building the MIME message: rendered once, headers safe, recipients explicit."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8

import attrs

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
        folded = msg.policy.fold(name, value)
        if _BROKEN_FOLD.search(folded.removesuffix("\r\n")):
            raise ValueError(f"header {name} would break into a second header")


@attrs.frozen
class Rendered:
    """Subject, text and HTML of one notification: rendered once, used for every message."""

    subject: str
    text: str
    html: str

    @classmethod
    def of(cls, notification: Notification, renderer: Renderer) -> Rendered:
        return cls(
            header_safe("Subject", renderer.subject(notification)),
            renderer.text(notification),
            renderer.html(notification),
        )


def message_id(notification: Notification, sender: Mailbox, *, tag: str = "") -> str:
    """Stable per notification and target, so that a resend is recognisable."""
    return f"<{notification.id}{tag}@{sender.domain}>"


def _addresses(mailboxes: Sequence[Mailbox], utf8: bool) -> str | list[Address]:
    if not utf8:
        return [m.header for m in mailboxes]  # type: ignore[misc]
    return ", ".join(str(m.header) for m in mailboxes)


def build(
    notification: Notification,
    rendered: Rendered,
    *,
    sender: Mailbox,
    to: Sequence[Mailbox],
    cc: Sequence[Mailbox] = (),
    reply_to: Sequence[Mailbox] = (),
    tag: str = "",
) -> tuple[EmailMessage, bool]:
    """The message, and whether it needs SMTPUTF8. Bcc recipients never appear here."""
    utf8 = any(m.needs_smtputf8 for m in (sender, *to, *cc, *reply_to))
    policy = SMTPUTF8 if utf8 else SMTP
    msg = EmailMessage(policy=policy)
    msg["Subject"] = rendered.subject
    msg["From"] = _addresses([sender], utf8)
    msg["To"] = _addresses(to, utf8)
    if cc:
        msg["Cc"] = _addresses(cc, utf8)
    if reply_to:
        msg["Reply-To"] = _addresses(reply_to, utf8)
    msg["Date"] = email.utils.format_datetime(notification.timestamp)
    msg["Message-ID"] = message_id(notification, sender, tag=tag)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg["X-DBackup-Event"] = header_safe("X-DBackup-Event", notification.event_type)
    # quoted-printable: 7-bit safe for servers without 8BITMIME
    msg.set_content(rendered.text, cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    check_headers(msg)
    return msg, utf8
