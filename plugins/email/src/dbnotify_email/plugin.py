"""The Email (SMTP) channel's hook implementations."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dbnotify.channel import (
    ChannelInfo,
    FailureKind,
    Notification,
    RecipientResult,
    Renderer,
    Status,
    TestReport,
    TestStage,
    hookimpl,
    structure,
)
from dbnotify_email import message, presets, transaction
from dbnotify_email.addresses import Mailbox
from dbnotify_email.errors import Stage, past_deadline
from dbnotify_email.masking import masker
from dbnotify_email.pool import close_all, pool_for
from dbnotify_email.session import StageFailed, StageLog, open_session
from dbnotify_email.settings import CONVERTER, SCHEMA_RULES, EmailConfig
from dbnotify_email.transaction import NothingSent, Outgoing


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Email (SMTP): HTML notifications through any SMTP server",
        config_class=EmailConfig,
        user_delivery=True,
        extra_options={
            "preset": {
                "type": "string",
                "enum": list(presets.PRESETS),
                "description": "fill host, port and security as the provider documents "
                "(keys written here win)",
            },
            "region": {
                "type": "string",
                "pattern": presets.REGION_PATTERN,
                "description": 'AWS region with preset = "ses" (default us-east-1)',
            },
        },
        supplied={"host": presets.SUPPLIES_HOST},
        schema_rules=(*presets.SCHEMA_RULES, *SCHEMA_RULES),
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> EmailConfig:
    return structure(EmailConfig, presets.apply(options), converter=CONVERTER)


def _user_addresses(
    recipients: tuple[str, ...],
) -> tuple[tuple[Mailbox, ...], list[RecipientResult]]:
    valid: list[Mailbox] = []
    invalid: list[RecipientResult] = []
    for text in recipients:
        try:
            valid.append(Mailbox.parse(text))
        except ValueError as exc:
            invalid.append(
                RecipientResult.failed(
                    text,
                    FailureKind.PERMANENT,
                    str(exc),
                    hint="fix the user's email address in DBackup",
                )
            )
    return tuple(valid), invalid


def outgoing(
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    user: tuple[Mailbox, ...] | None = None,
    *,
    date: dt.datetime | None = None,
) -> list[Outgoing]:
    """The messages for one notification: rendered once, built per message.

    Built anew for each attempt, so ``Date`` is the attempt's (``date``, else now) and
    the Message-ID the notification's.

    A user's copy goes to the user alone (no Cc, no Bcc). With ``per_recipient`` every
    recipient gets a message of their own; otherwise one message carries To and Cc in
    its headers and Bcc only in the envelope.
    """
    rendered = message.Rendered.of(notification, renderer)
    date = date or dt.datetime.now(dt.UTC)
    # a user's copy names the user alone: no Cc, no Bcc, no Reply-To of the admins'
    reply_to = config.reply_to or () if user is None else ()
    Group = tuple[tuple[Mailbox, ...], tuple[Mailbox, ...], tuple[Mailbox, ...], str]
    groups: list[Group]
    if user is not None:
        groups = [(user, (), (), ".user")]
    elif config.per_recipient:
        everyone = [*config.to, *(config.cc or ()), *(config.bcc or ())]
        groups = [((m,), (), (), "." + _tag(m)) for m in _unique(everyone)]
    else:
        groups = [(config.to, config.cc or (), config.bcc or (), "")]
    result = []
    for to, cc, bcc, tag in groups:
        data, utf8 = message.build(
            notification,
            rendered,
            sender=config.from_,
            to=to,
            cc=cc,
            reply_to=reply_to,
            tag=tag,
            date=date,
        )
        envelope = _unique((*to, *cc, *bcc))
        needs = utf8 or any(m.needs_smtputf8 for m in envelope)
        result.append(
            Outgoing(
                config.from_,
                envelope,
                data,
                needs,
                _ascii_data(
                    notification, rendered, config, to, cc, tag, date, data if not utf8 else None
                )
                if needs
                else None,
            )
        )
    return result


def _ascii_data(
    notification: Notification,
    rendered: message.Rendered,
    config: EmailConfig,
    to: tuple[Mailbox, ...],
    cc: tuple[Mailbox, ...],
    tag: str,
    date: dt.datetime,
    same: bytes | None,
) -> bytes | None:
    """The message for a server without SMTPUTF8: its non-ASCII addresses left out.

    None when the sender or Reply-To needs SMTPUTF8. ``same`` is the message itself when
    only the envelope (Bcc) needs SMTPUTF8.
    """
    if same is not None:
        return same
    if config.from_.needs_smtputf8 or any(m.needs_smtputf8 for m in config.reply_to or ()):
        return None
    ascii_to = tuple(m for m in to if not m.needs_smtputf8)
    ascii_cc = tuple(m for m in cc if not m.needs_smtputf8)
    # only Bcc recipients left: To is "undisclosed-recipients:;", never empty
    data, _utf8 = message.build(
        notification,
        rendered,
        sender=config.from_,
        to=ascii_to or ascii_cc,
        cc=ascii_cc if ascii_to else (),
        reply_to=config.reply_to or (),
        tag=tag,
        date=date,
    )
    return data


def _unique(mailboxes: Sequence[Mailbox]) -> tuple[Mailbox, ...]:
    """One per address, whatever display names it was given (one RCPT, one message)."""
    seen: dict[str, Mailbox] = {}
    for m in mailboxes:
        seen.setdefault(m.envelope.lower(), m)
    return tuple(seen.values())


def _tag(mailbox: Mailbox) -> str:
    return hashlib.sha256(mailbox.envelope.lower().encode()).hexdigest()[:10]


@attrs.define
class _Stage:
    """Where the message being sent stands, for the reason if the deadline runs out."""

    name: Stage = "queued"

    def sending(self) -> None:
        self.name = "sending"


async def _send_one(
    config: EmailConfig, message_: Outgoing, stage: _Stage
) -> list[RecipientResult]:
    pool = pool_for(config)
    for fresh in (False, True):
        try:
            async with pool.session(fresh=fresh, on_slot=stage.sending, message=message_) as (
                session,
                reused,
            ):
                return await transaction.send(session, message_)
        except NothingSent as exc:
            if reused and not fresh:
                continue  # the pooled connection went stale while idle: nothing was sent
            return [exc.failure.result(str(m)) for m in message_.recipients]
        except StageFailed as exc:
            return [exc.failure.result(str(m)) for m in message_.recipients]
    raise AssertionError("unreachable")


@hookimpl
async def send(
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
    retry_only: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    """Every result masked (a server may echo the password or a token): see masking."""
    results = await _send(config, notification, renderer, recipients, retry_only)
    return masker(config).results(results)


async def _send(
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
    retry_only: tuple[str, ...] | None,
) -> list[RecipientResult]:
    results: list[RecipientResult] = []
    user: tuple[Mailbox, ...] | None = None
    if recipients is not None:
        user, results = _user_addresses(recipients)
        if not user:
            return results
    messages: list[Outgoing] | None = None
    done: list[list[RecipientResult]] = []
    stage = _Stage()
    try:
        async with asyncio.timeout(config.deadline):
            await pool_for(config).turn()  # a burst is rendered a few at a time
            messages = _messages(config, notification, renderer, user, retry_only, results)
            for message_ in messages:
                stage = _Stage()
                done.append(await _send_one(config, message_, stage))
    except TimeoutError:
        if messages is None:  # the deadline ran out while waiting for a turn
            messages = _messages(config, notification, renderer, user, retry_only, results)
        for index, unsent in enumerate(messages[len(done) :]):
            failure = past_deadline(config, stage.name if index == 0 else "later")
            done.append([failure.result(str(m)) for m in unsent.recipients])
    return results + [r for group in done for r in group]


def _messages(
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    user: tuple[Mailbox, ...] | None,
    retry_only: tuple[str, ...] | None,
    results: list[RecipientResult],
) -> list[Outgoing]:
    """The messages to send; with ``retry_only``, the same messages (headers,
    Message-ID) to those who still need them, and a skipped result in ``results`` for
    each of those no longer a recipient."""
    messages = outgoing(config, notification, renderer, user)
    if retry_only is None:
        return messages
    wanted = set(retry_only)
    messages = [
        attrs.evolve(m, recipients=kept)
        for m in messages
        if (kept := tuple(r for r in m.recipients if str(r) in wanted))
    ]
    still = {str(r) for m in messages for r in m.recipients}
    results += [
        RecipientResult.skipped(gone, "no longer a recipient of this channel")
        for gone in retry_only
        if gone not in still
    ]
    return messages


@hookimpl
async def test(
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """Every stage on a fresh connection, then (unless told not to) a test email; every
    text masked (a server may echo the password or a token): see masking."""
    report = await _test(config, notification, renderer, send_message)
    return masker(config).report(report)


async def _test(
    config: EmailConfig, notification: Notification, renderer: Renderer, send_message: bool
) -> TestReport:
    log = StageLog()
    try:
        async with asyncio.timeout(config.deadline):
            session = await open_session(config, log)
            try:
                if not send_message:
                    return TestReport(tuple(log.stages))
                started = time.monotonic()
                deliveries: list[RecipientResult] = []
                for message_ in outgoing(config, notification, renderer):
                    deliveries += await transaction.send(session, message_)
                ok = all(d.status is Status.DELIVERED for d in deliveries)
                log.add(
                    TestStage(
                        "send",
                        ok,
                        f"test email to {', '.join(d.recipient for d in deliveries)}"
                        if ok
                        else "not every recipient got the test email",
                        time.monotonic() - started,
                    )
                )
                return TestReport(tuple(log.stages), tuple(deliveries))
            finally:
                await session.close()
    except StageFailed:
        return TestReport(tuple(log.stages))
    except NothingSent as exc:
        log.failed("send", exc.failure, time.monotonic())
        return TestReport(tuple(log.stages))
    except TimeoutError:
        log.cut_short(
            f"the test took longer than deadline = {config.deadline:g}s in all",
            hint="the server answers too slowly; check it, or raise deadline",
        )
        return TestReport(tuple(log.stages))


@hookimpl
async def shutdown() -> None:
    """Close the connections kept open for reuse on this event loop."""
    await close_all()


@hookimpl
def preview(config: EmailConfig, notification: Notification, renderer: Renderer) -> str:
    """The first message ``send`` would build, as an ``.eml`` (``dbnotify render``)."""
    return outgoing(config, notification, renderer)[0].data.decode("utf-8")
