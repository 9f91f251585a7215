"""Email addresses: parsed once, validated, never read back from headers.

``parseaddr`` misparses crafted input (CVE-2023-27043), so we parse the only two forms
we accept ourselves: ``addr@example.com`` and ``Display Name <addr@example.com>``, and
validate the address with email-validator.
"""

from __future__ import annotations

import email.errors
import re
from email.headerregistry import Address
from typing import Any, NewType

import attrs
import email_validator

from dbnotify.channel import ConfigError, ConfigIssue, describe_value

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED_WORD = re.compile(r"=\?.*\?=")
"""An RFC 2047 encoded word: allowed in a display name's text, never in an address."""
_SPECIALS = frozenset('()<>[]:;@\\,"')
"""RFC 5322 specials: a display name holding one of these must be quoted."""


@attrs.frozen
class Mailbox:
    """A validated address with an optional display name."""

    addr: str
    """Normalised address (domain lower-cased; Unicode where given)."""
    display_name: str = ""
    ascii_addr: str | None = None
    """The address with an IDNA (``xn--``) domain; None when the local part is not ASCII
    (such an address needs a server that offers SMTPUTF8)."""

    @classmethod
    def parse(cls, text: str) -> Mailbox:
        if _CONTROL.search(text):
            raise ValueError(
                f"{describe_value(text)} contains a control character "
                "(line break, tab, NUL); remove it"
            )
        raw = text.strip()
        display = ""
        if raw.endswith(">") and "<" in raw:
            cut = raw.rindex("<")
            display, raw = raw[:cut].strip(), raw[cut + 1 : -1].strip()
            if len(display) >= 2 and display[0] == display[-1] == '"':
                display = display[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            elif _SPECIALS.intersection(display):
                # a@b.org(<c@d.com>: parseaddr's CVE-2023-27043 reading; say it, never guess
                raise ValueError(
                    f"{describe_value(text)} is ambiguous: a display name with any of "
                    '( ) < > [ ] : ; @ \\ , " must be in double quotes, e.g. '
                    '"Ops, Night Shift" <ops@example.com>'
                )
            if "=?" in display:
                # the email package decodes RFC 2047 words in a display name, and on
                # CPython < 3.11.15/3.12.13/3.13.12 writes a decoded line break as a real one
                raise ValueError(
                    f"{describe_value(text)} has an encoded word (=?...?=) in its display "
                    "name; write the name as plain text (Unicode is fine)"
                )
        if _ENCODED_WORD.search(raw.rpartition("@")[0]):
            # email-validator accepts it; the email package decodes it (into another
            # address, or an error at every send)
            raise ValueError(
                f"{describe_value(text)} has an encoded word (=?...?=) before the @; "
                "write the address as it is delivered"
            )
        try:
            valid = email_validator.validate_email(
                raw, check_deliverability=False, allow_smtputf8=True
            )
        except email_validator.EmailNotValidError as exc:
            raise ValueError(
                f"{describe_value(text)} is not a valid email address: {exc}"
            ) from None
        mailbox = cls(valid.normalized, display, valid.ascii_email)
        try:
            header = mailbox.header  # what every send builds: fail now, not at each send
        except (ValueError, email.errors.MessageError) as exc:
            raise ValueError(
                f"{describe_value(text)} cannot be written in a mail header: {exc}"
            ) from None
        if isinstance(header, Address) and header.addr_spec != valid.ascii_email:
            raise ValueError(
                f"{describe_value(text)} would be written as {header.addr_spec!r} in a mail "
                "header; write the address as it is delivered"
            )
        return mailbox

    @property
    def needs_smtputf8(self) -> bool:
        return self.ascii_addr is None

    @property
    def header(self) -> Address | str:
        """For a header: an ``Address`` (the email package quotes the name as needed).

        The email package refuses to make an ``Address`` of a non-ASCII local part, so
        such a mailbox is written out here, for a message sent with SMTPUTF8.
        """
        if self.ascii_addr is not None:
            return Address(display_name=self.display_name, addr_spec=self.ascii_addr)
        if not self.display_name:
            return self.addr
        quoted = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{self.addr}>'

    @property
    def envelope(self) -> str:
        return self.ascii_addr or self.addr

    @property
    def domain(self) -> str:
        return self.envelope.rpartition("@")[2]

    def __str__(self) -> str:
        return self.addr


AddressList = NewType("AddressList", tuple[Mailbox, ...])
"""One or more addresses: a list, or one string split on commas and semicolons."""


def structure_mailbox(value: Any, _cl: Any) -> Mailbox:
    """The converter's hook for :class:`Mailbox`: one address string."""
    if isinstance(value, Mailbox):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be an email address string (got {describe_value(value)})")
    return Mailbox.parse(value)


def _split(text: str) -> list[str]:
    """Split on commas and semicolons outside double quotes (``"Ops, Night" <o@x.org>``)."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in ",;" and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def structure_address_list(value: Any, _cl: Any) -> tuple[Mailbox, ...]:
    """The converter's hook for :data:`AddressList`: each bad address at its index."""
    if isinstance(value, str):
        items: list[Any] = _split(value)
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(
            "must be a list of email addresses, or one string of addresses "
            f"separated by commas (got {describe_value(value)})"
        )
    if not items:
        raise ValueError("must name at least one address")
    issues: list[ConfigIssue] = []
    found: list[Mailbox] = []
    for index, item in enumerate(items):
        try:
            found.append(structure_mailbox(item, Mailbox))
        except ValueError as exc:
            issues.append(ConfigIssue(f"[{index}]", str(exc)))
    if issues:
        raise ConfigError(issues)
    return tuple(found)


MAILBOX_SCHEMA = {"type": "string", "format": "email", "pattern": "@"}
"""How a :class:`Mailbox` is written, for ``dbnotify schema``: only the ``@`` of what
:meth:`Mailbox.parse` checks can be said in JSON Schema."""
ADDRESS_LIST_SCHEMA = {
    "oneOf": [
        {"type": "array", "items": MAILBOX_SCHEMA, "minItems": 1},
        {
            "type": "string",
            "pattern": "@",
            "description": "addresses separated by commas or semicolons",
        },
    ]
}
"""How an :data:`AddressList` is written, for ``dbnotify schema``."""
