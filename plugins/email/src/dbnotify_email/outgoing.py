"""A message ready to go, as the transaction and the connection pool both see it."""

from __future__ import annotations

import attrs

from dbnotify_email.addresses import Mailbox


@attrs.frozen
class Outgoing:
    """A message ready to go: its bytes and who it goes to."""

    sender: Mailbox
    recipients: tuple[Mailbox, ...]
    data: bytes
    utf8: bool = False
    """Needs SMTPUTF8 (a non-ASCII local part)."""
    ascii_data: bytes | None = None
    """With ``utf8``: the message for the recipients with ASCII addresses, sent to them
    when the server does not offer SMTPUTF8 (None when the sender or Reply-To needs it)."""
