"""One mail transaction: MAIL FROM, RCPT TO for each recipient, DATA.

Done command by command rather than with aiosmtplib's ``send_message`` so that every
recipient keeps its own reply, a partial rejection delivers to the accepted ones, a
452 "too many recipients" sends the rest in a new transaction, and a failure is known
to have happened before DATA (nothing sent; safe to try again on a fresh connection)
or after it (the message may have arrived).
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosmtplib
import attrs

from dbnotify.results import FailureKind, RecipientResult
from dbnotify_email.addresses import Mailbox
from dbnotify_email.errors import Failure, classify, kind_of, reply_text
from dbnotify_email.session import Session


class NothingSent(Exception):
    """The connection failed before DATA: no recipient can have the message."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


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


def _too_many(error: aiosmtplib.SMTPRecipientRefused, accepted: int) -> bool:
    """RFC 5321 4.5.3.1.10: 452 (some servers: 552) after accepting others = come back."""
    text = error.message.lower()
    return (error.code == 452 and accepted > 0) or (
        error.code in (452, 552) and "too many recipients" in text
    )


async def send(session: Session, outgoing: Outgoing) -> list[RecipientResult]:
    """Deliver to every recipient it can; one result per recipient, in order."""
    config = session.config
    smtp = session.smtp
    results: dict[Mailbox, RecipientResult] = {}
    everyone = outgoing.recipients
    if outgoing.utf8 and not session.smtputf8:
        # only the non-ASCII addresses need SMTPUTF8: they fail, the others get the
        # message without them
        hint = "ask the mail provider for SMTPUTF8 support, or use an ASCII address"
        failure = Failure(
            FailureKind.PERMANENT,
            "this address has non-ASCII characters before the @, and the server does not "
            "support SMTPUTF8",
            hint=hint,
        )
        rest = tuple(m for m in everyone if not m.needs_smtputf8)
        for m in everyone:
            if m.needs_smtputf8:
                results[m] = failure.result(str(m))
        if outgoing.ascii_data is None:
            sender = Failure(
                FailureKind.PERMANENT,
                "the from or reply_to address has non-ASCII characters before the @, and "
                "the server does not support SMTPUTF8",
                hint=hint,
            )
            for m in rest:
                results[m] = sender.result(str(m))
            rest = ()
        outgoing = attrs.evolve(
            outgoing, recipients=rest, data=outgoing.ascii_data or b"", utf8=False
        )
    options = ["SMTPUTF8"] if outgoing.utf8 else []
    pending: Sequence[Mailbox] = outgoing.recipients
    first = True
    while pending:
        try:
            await smtp.mail(outgoing.sender.envelope, options=options, encoding="utf-8")
        except aiosmtplib.SMTPSenderRefused as exc:
            if exc.code == 421:
                # "closing the connection" (an idle timeout, a restart): not about the
                # sender; nothing was sent, so a pooled connection is retried on a new one
                session.broken = True
                failure = Failure(
                    FailureKind.TRANSIENT,
                    "the server is closing the connection",
                    reply_text(exc.code, exc.message),
                    "try again later",
                )
                if first:
                    raise NothingSent(failure) from exc
                for m in pending:
                    results[m] = failure.result(str(m))
                break
            failure = classify(exc, config, stage="mail")
            await _reset(session)
            for m in pending:
                results[m] = failure.result(str(m))
            break
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            session.broken = True
            failure = classify(exc, config, stage="mail")
            if first:
                raise NothingSent(failure) from exc
            for m in pending:
                results[m] = failure.result(str(m))
            break
        first = False
        accepted: list[Mailbox] = []
        again: list[Mailbox] = []
        for m in pending:
            try:
                await smtp.rcpt(m.envelope, encoding="utf-8")
            except aiosmtplib.SMTPRecipientRefused as exc:
                if _too_many(exc, len(accepted)):
                    again.append(m)
                else:
                    results[m] = RecipientResult.failed(
                        str(m),
                        kind_of(exc.code),
                        "the server refused this recipient",
                        reply=reply_text(exc.code, exc.message),
                        hint="check the address" if exc.code >= 500 else "try again later",
                    )
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                session.broken = True
                failure = classify(exc, config, stage="rcpt")
                for r in [*accepted, *again, *pending[pending.index(m) :]]:
                    results[r] = failure.result(str(r))
                return [results[m] for m in everyone]
            else:
                accepted.append(m)
        if not accepted:
            await _reset(session)
            for m in again:
                results[m] = RecipientResult.failed(
                    str(m),
                    FailureKind.TRANSIENT,
                    "the server accepts no more recipients now",
                    hint="try again later",
                )
            break
        try:
            reply = await smtp.data(outgoing.data)
        except aiosmtplib.SMTPDataError as exc:
            for m in accepted:
                results[m] = RecipientResult.failed(
                    str(m),
                    kind_of(exc.code),
                    "the server refused the message",
                    reply=reply_text(exc.code, exc.message),
                )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            session.broken = True
            failure = classify(exc, config, stage="data")
            lost = Failure(
                FailureKind.TRANSIENT,
                f"{failure.reason} while sending the message; it may or may not have arrived",
                failure.reply,
                "sending again may deliver it twice: a duplicate is better than a loss",
            )
            for m in [*accepted, *again]:
                results[m] = lost.result(str(m))
            break
        else:
            for m in accepted:
                results[m] = RecipientResult.delivered(
                    str(m), reply=reply_text(reply.code, reply.message)
                )
        pending = again
    return [results[m] for m in everyone]


async def _reset(session: Session) -> None:
    try:
        await session.smtp.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        session.broken = True
