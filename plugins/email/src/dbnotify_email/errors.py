"""SMTP failures turned into results with a class (transient / permanent) and a hint.

The hints carry the troubleshooting advice of the Email (SMTP) docs page, so that the
operator reads it where the failure is reported.
"""

from __future__ import annotations

import socket
import ssl
from typing import Literal

import aiosmtplib
import attrs

from dbnotify.channel import FailureKind, RecipientResult
from dbnotify_email.settings import AuthMethod, EmailConfig, Security

HINT_REFUSED = (
    "check the SMTP host and port; check that a firewall allows outbound "
    "connections on that port; check that the SMTP server is running; in Docker, "
    "check that the container can reach the mail server"
)
HINT_AUTH = (
    "double-check user and password; Gmail needs an App Password, not your "
    "regular password; check that the security setting matches what the server "
    "expects; some providers require enabling SMTP access"
)
HINT_OAUTH = (
    "the OAuth access token was refused: check that oauth2_token gives a fresh token "
    "(they expire after about an hour) issued for user, with the mail scope (Microsoft "
    "365: SMTP.Send, and SMTP AUTH enabled for the mailbox; Gmail: https://mail.google.com/)"
)
HINT_TIMEOUT = (
    "check the port (a common mistake is 25 instead of 587); check for a "
    "firewall in between; try another security setting; raise timeout if the "
    "server is slow"
)
HINT_TLS = (
    "the server's certificate was not accepted; if it is signed by a private CA, set "
    "tls_ca_file to that CA's PEM file; check that host matches the certificate"
)


@attrs.frozen
class Failure:
    kind: FailureKind
    reason: str
    reply: str | None = None
    hint: str | None = None

    parks_channel: bool = False

    def result(self, recipient: str) -> RecipientResult:
        return RecipientResult.failed(
            recipient,
            self.kind,
            self.reason,
            reply=self.reply,
            hint=self.hint,
            parks_channel=self.parks_channel,
        )


Stage = Literal["queued", "later", "sending"]
"""Where a message stood when the channel's deadline ran out (see :func:`past_deadline`)."""


def past_deadline(config: EmailConfig, stage: Stage) -> Failure:
    """The channel's ``deadline`` ran out for a message; ``stage`` says where it stood:
    ``queued`` (waiting for a connection), ``later`` (behind another message of the same
    notification) or ``sending`` (connecting, or in a transaction). Only ``sending`` may
    have reached the server."""
    limit = f"deadline = {config.deadline:g}s"
    if stage == "queued":
        return Failure(
            FailureKind.TRANSIENT,
            f"not sent: every connection to {config.host} that max_connections = "
            f"{config.max_connections} allows stayed busy with other notifications past "
            f"{limit}",
            hint="more notifications at once than the server takes in that time; raise "
            "max_connections or deadline, or add an [outbox] so that the rest is retried",
        )
    if stage == "later":
        return Failure(
            FailureKind.TRANSIENT,
            f"not sent: {limit} passed before its turn (one message per recipient, "
            "one after another)",
            hint="the server answers too slowly for per_recipient; check it, or raise deadline",
        )
    return Failure(
        FailureKind.TRANSIENT,
        f"the server took longer than {limit} in all",
        hint="the server answers too slowly (or keeps the connection busy); check it, "
        "or raise deadline; if the message was already being sent, it may or may not "
        "have arrived",
    )


def kind_of(code: int) -> FailureKind:
    return FailureKind.TRANSIENT if 400 <= code < 500 else FailureKind.PERMANENT


def reply_text(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


HINT_NOT_TLS = "this server is not speaking TLS: use starttls or none"


def classify(exc: BaseException, config: EmailConfig, *, stage: str = "") -> Failure:
    """What an exception at a stage (greeting, tls, auth, mail ...) means to the operator."""
    where = f"{config.host}:{config.effective_port}"
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code < 0:
        # aiosmtplib's own code for a reply it could not read: garbled, or over 32 KiB
        return Failure(
            FailureKind.TRANSIENT,
            f"the server sent an unreadable reply ({exc.message})",
            hint="the server (or something between) is misbehaving; check its logs",
        )
    if (
        isinstance(exc, aiosmtplib.SMTPResponseException)
        and stage in ("greeting", "tls")
        and (isinstance(exc, aiosmtplib.SMTPConnectResponseError))
    ):
        return Failure(
            kind_of(exc.code),
            "the server is not accepting connections now"
            if exc.code < 500
            else "the server refused the connection",
            reply_text(exc.code, exc.message),
            "try again later"
            if exc.code < 500
            else "check that this is the right server, and that it accepts mail from this machine",
        )
    if stage == "greeting" and isinstance(
        exc, aiosmtplib.SMTPConnectTimeoutError | aiosmtplib.SMTPTimeoutError | TimeoutError
    ):
        return Failure(
            FailureKind.TRANSIENT,
            f"no greeting from {where} within {config.timeout:g}s",
            hint="the server accepted the connection but said nothing; if this port speaks "
            'TLS from the start (like 465), use security = "ssl"; ' + HINT_TIMEOUT,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 530:
        # 530: "Authentication required" (RFC 4954) or "Must issue a STARTTLS command
        # first" (RFC 3207): a configuration error either way, not a bad sender
        if "TLS" in exc.message.upper():
            return Failure(
                FailureKind.PERMANENT,
                "the server requires TLS first",
                reply_text(exc.code, exc.message),
                'set security = "starttls" (or "ssl" on port 465)',
            )
        return Failure(
            FailureKind.PERMANENT,
            "the server requires authentication",
            reply_text(exc.code, exc.message),
            "set user and password"
            if config.user is None
            else "the server wants AUTH before this command; check user, password "
            "and the security setting",
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Failure(
            kind_of(exc.code) if exc.code < 500 else FailureKind.PERMANENT,
            "Invalid login credentials",
            reply_text(exc.code, exc.message),
            HINT_OAUTH if config.auth is AuthMethod.XOAUTH2 else HINT_AUTH,
            parks_channel=exc.code >= 500,  # retrying bad credentials only locks accounts
        )
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return Failure(
            kind_of(exc.code),
            f"the server refused the sender {exc.sender}",
            reply_text(exc.code, exc.message),
            "check the 'from' setting: the server may only accept addresses of "
            "your own domain or of the authenticated user",
        )
    if isinstance(
        exc, aiosmtplib.SMTPConnectTimeoutError | aiosmtplib.SMTPTimeoutError | TimeoutError
    ):
        return Failure(FailureKind.TRANSIENT, f"Connection timed out ({where})", hint=HINT_TIMEOUT)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Failure(
            kind_of(exc.code), f"the server answered {exc.code}", reply_text(exc.code, exc.message)
        )
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return Failure(
            FailureKind.TRANSIENT,
            f"the server closed the connection ({where})",
            hint="try again later; if it keeps happening, check the security "
            "setting and the server's logs",
        )
    if isinstance(exc, aiosmtplib.SMTPException) and "AUTH extension" in str(exc):
        return Failure(
            FailureKind.PERMANENT,
            "the server does not offer AUTH"
            + (" over a plain connection" if config.security is Security.NONE else ""),
            hint="remove user and password if this server needs no login; "
            "otherwise check the security setting (many servers offer AUTH "
            "only over TLS)",
        )
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS extension not supported" in str(exc):
        return Failure(
            FailureKind.PERMANENT,
            "STARTTLS was required but the server did not offer it: possible downgrade",
            hint="the server (or something between) hides STARTTLS; "
            "dbnotify does not send over a plain connection when security is "
            "starttls; use ssl if the server supports it",
        )
    cause = exc.__cause__ or exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return Failure(
            FailureKind.PERMANENT,
            f"TLS certificate not trusted: {cause.verify_message}",
            hint=HINT_TLS,
        )
    if isinstance(cause, socket.gaierror):
        return Failure(
            FailureKind.PERMANENT if cause.errno == socket.EAI_NONAME else FailureKind.TRANSIENT,
            f"cannot resolve host {config.host!r}",
            hint="check the host setting and the DNS of this machine",
        )
    if isinstance(cause, ConnectionRefusedError) or (
        isinstance(exc, aiosmtplib.SMTPConnectError) and "refused" in str(exc).lower()
    ):
        return Failure(
            FailureKind.TRANSIENT, f"Connection refused to smtp server {where}", hint=HINT_REFUSED
        )
    if isinstance(cause, ssl.SSLError):
        if config.security is Security.SSL and cause.reason in (
            "WRONG_VERSION_NUMBER",
            "RECORD_LAYER_FAILURE",
            "UNKNOWN_PROTOCOL",
            "PACKET_LENGTH_TOO_LONG",
        ):
            return Failure(
                FailureKind.PERMANENT,
                f"TLS failed: the server at {where} is not speaking TLS",
                hint=HINT_NOT_TLS,
            )
        return Failure(FailureKind.PERMANENT, f"TLS failed: {cause.reason or cause}", hint=HINT_TLS)
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        return Failure(
            FailureKind.TRANSIENT, f"cannot connect to {where}: {exc}", hint=HINT_REFUSED
        )
    return Failure(FailureKind.TRANSIENT, f"{type(exc).__name__}: {exc}")
