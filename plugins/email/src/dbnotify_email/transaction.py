"""One mail transaction: MAIL FROM, RCPT TO for each recipient, DATA.

Done with our own command exchange (:mod:`dbnotify_email.wire`: pipelined where the server
offers PIPELINING) rather than with aiosmtplib's ``send_message`` so that every
recipient keeps its own reply, a partial rejection delivers to the accepted ones, a
452 "too many recipients" sends the rest in a new transaction, and a failure is known
to have happened before DATA (nothing sent; safe to try again on a fresh connection)
or after it (the message may have arrived).
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosmtplib
import attrs
from aiosmtplib import SMTPResponse

from dbnotify.channel import FailureKind, RecipientResult
from dbnotify_email import wire
from dbnotify_email.addresses import Mailbox
from dbnotify_email.errors import Failure, classify, kind_of, reply_text
from dbnotify_email.outgoing import Outgoing
from dbnotify_email.session import Handoff, Session

__all__ = ["ACCEPTED", "DATA", "Handoff", "NothingSent", "Outgoing", "send"]

DATA = b"DATA\r\n"
ACCEPTED = (250, 251)


class NothingSent(Exception):
    """The connection failed before DATA: no recipient can have the message."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def _too_many(reply: SMTPResponse, accepted: int) -> bool:
    """RFC 5321 4.5.3.1.10: 452 (some servers: 552) after accepting others = come back."""
    text = reply.message.lower()
    return (reply.code == 452 and accepted > 0) or (
        reply.code in (452, 552) and "too many recipients" in text
    )


def _adapted(
    session: Session, outgoing: Outgoing
) -> tuple[Outgoing, dict[Mailbox, RecipientResult]]:
    """The message as this server can take it, and the recipients it cannot reach."""
    results: dict[Mailbox, RecipientResult] = {}
    if not outgoing.utf8 or session.smtputf8:
        return outgoing, results
    # only the non-ASCII addresses need SMTPUTF8: they fail, the others get the message
    # without them
    hint = "ask the mail provider for SMTPUTF8 support, or use an ASCII address"
    failure = Failure(
        FailureKind.PERMANENT,
        "this address has non-ASCII characters before the @, and the server does not "
        "support SMTPUTF8",
        hint=hint,
    )
    everyone = outgoing.recipients
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
    adapted = attrs.evolve(outgoing, recipients=rest, data=outgoing.ascii_data or b"", utf8=False)
    return adapted, results


def _envelope(outgoing: Outgoing, pending: Sequence[Mailbox]) -> list[bytes]:
    """MAIL FROM, RCPT TO for each of ``pending``, DATA: what one group carries."""
    options = ["SMTPUTF8"] if outgoing.utf8 else []
    mail = wire.command(b"MAIL FROM:", outgoing.sender.envelope, options)
    return [mail, *(wire.command(b"RCPT TO:", m.envelope) for m in pending), DATA]


def _ahead(session: Session, outgoing: Outgoing) -> list[bytes]:
    """The first group :func:`send` will write for ``outgoing`` on this session, to go
    out early with another message's end of data; none where there is nothing to send."""
    outgoing, _refused = _adapted(session, outgoing)
    if not outgoing.recipients:
        return []
    try:
        return _envelope(outgoing, outgoing.recipients)
    except ValueError:  # send() reports it, in its own task
        return []


async def send(session: Session, outgoing: Outgoing) -> list[RecipientResult]:
    """Deliver to every recipient it can; one result per recipient, in order.

    Where the server pipelines and another message waits for a connection, that
    message's first group goes out with this one's end of data, and the connection goes
    to it (see :class:`Handoff`): its :func:`send` then reads the replies already on
    their way instead of writing the group again.
    """
    config = session.config
    everyone = outgoing.recipients
    outgoing, results = _adapted(session, outgoing)
    body = wire.data_block(outgoing.data)
    exchange = session.exchange
    pending: Sequence[Mailbox] = outgoing.recipients
    first = True
    while pending:
        group = _envelope(outgoing, pending)
        mail, rcpts = group[0], group[1:-1]
        replies: list[SMTPResponse] = []
        error: Exception | None = None
        try:
            if session.pipelining:  # RFC 2920: MAIL, every RCPT and DATA in one write
                await exchange.group(group, replies)
            else:
                await exchange.group([mail], replies)
                if replies[0].code == 250:
                    for rcpt in rcpts:
                        await exchange.group([rcpt], replies)
                    if any(r.code in ACCEPTED for r in replies[1:]):
                        await exchange.group([DATA], replies)
        except (aiosmtplib.SMTPException, OSError) as exc:
            session.broken = True
            error = exc
        if not replies:  # nothing came back, not even for MAIL: nothing was sent
            assert error is not None
            failure = classify(error, config, stage="mail")
            if first:
                raise NothingSent(failure) from error
            for m in pending:
                results[m] = failure.result(str(m))
            break
        was_first, first = first, False
        if replies[0].code != 250:
            if replies[0].code == 421:
                # "closing the connection" (an idle timeout, a restart): not about the
                # sender; nothing was sent, so a pooled connection is retried on a new one
                session.broken = True
                failure = Failure(
                    FailureKind.TRANSIENT,
                    "the server is closing the connection",
                    reply_text(replies[0].code, replies[0].message),
                    "try again later",
                )
                if was_first:
                    raise NothingSent(failure)
            else:
                refused = aiosmtplib.SMTPSenderRefused(
                    replies[0].code, replies[0].message, outgoing.sender.envelope
                )
                failure = classify(refused, config, stage="mail")
                await _abandon(session, exchange, replies, len(rcpts))
            for m in pending:
                results[m] = failure.result(str(m))
            break
        accepted: list[Mailbox] = []
        again: list[Mailbox] = []
        for index, m in enumerate(pending):
            if index + 1 >= len(replies):  # the connection failed before this reply
                assert error is not None
                failure = classify(error, config, stage="rcpt")
                for r in [*accepted, *again, *pending[index:]]:
                    results[r] = failure.result(str(r))
                return [results[m] for m in everyone]
            reply = replies[index + 1]
            if reply.code in ACCEPTED:
                accepted.append(m)
            elif _too_many(reply, len(accepted)):
                again.append(m)
            else:
                results[m] = RecipientResult.failed(
                    str(m),
                    kind_of(reply.code),
                    "the server refused this recipient",
                    reply=reply_text(reply.code, reply.message),
                    hint="check the address" if reply.code >= 500 else "try again later",
                )
        if not accepted:
            await _abandon(session, exchange, replies, len(rcpts))
            for m in again:
                results[m] = RecipientResult.failed(
                    str(m),
                    FailureKind.TRANSIENT,
                    "the server accepts no more recipients now",
                    hint="try again later",
                )
            break
        if len(replies) < len(rcpts) + 2:  # the connection failed waiting for DATA's reply
            assert error is not None
            failure = classify(error, config, stage="data")
            for m in [*accepted, *again]:
                results[m] = failure.result(str(m))
            break
        go_ahead = replies[-1]
        if go_ahead.code != 354:
            for m in accepted:
                results[m] = _refused_message(m, go_ahead)
            pending = again
            continue
        sent: list[SMTPResponse] = []
        handoff = None
        if not again and session.pipelining and session.next_in_line is not None:
            handoff = session.next_in_line()
        try:
            then = _ahead(session, handoff.message) if handoff is not None else []
            await exchange.group([body], sent, then=then)
        except (aiosmtplib.SMTPException, OSError) as exc:
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
        except BaseException:
            session.broken = True  # cancelled mid-reply: the connection is out of step
            raise
        finally:
            if handoff is not None:
                handoff.give(session)
        for m in accepted:
            results[m] = (
                RecipientResult.delivered(str(m), reply=reply_text(sent[0].code, sent[0].message))
                if sent[0].code == 250
                else _refused_message(m, sent[0])
            )
        pending = again
    return [results[m] for m in everyone]


def _refused_message(mailbox: Mailbox, reply: SMTPResponse) -> RecipientResult:
    return RecipientResult.failed(
        str(mailbox),
        kind_of(reply.code),
        "the server refused the message",
        reply=reply_text(reply.code, reply.message),
    )


async def _abandon(
    session: Session, exchange: wire.Exchange, replies: list[SMTPResponse], rcpts: int
) -> None:
    """End a transaction that sends no message: a lone dot after a 354, then RSET."""
    if session.broken:
        return
    try:
        if len(replies) == rcpts + 2 and replies[-1].code == 354:
            await exchange.group([b".\r\n"], [])  # RFC 2920 3.1: the server refuses it
        await session.smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        session.broken = True
