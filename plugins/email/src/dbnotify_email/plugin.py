"""The Email (SMTP) channel's hook implementations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiosmtplib

from dbnotify.config import structure
from dbnotify.events import Notification
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.rendering import Renderer
from dbnotify.results import FailureKind, RecipientResult, TestReport, TestStage
from dbnotify_email import message, transport
from dbnotify_email.addresses import Mailbox
from dbnotify_email.errors import Failure, ca_file_failure, classify, reply_text
from dbnotify_email.settings import EmailConfig, Security


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Email (SMTP): HTML notifications through any SMTP server",
        config_class=EmailConfig,
        user_delivery=True,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> EmailConfig:
    return structure(EmailConfig, options)


def _recipients(
    config: EmailConfig, recipients: tuple[str, ...] | None
) -> tuple[tuple[Mailbox, ...], list[RecipientResult]]:
    if recipients is None:
        return config.to, []
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


async def _deliver(
    smtp: aiosmtplib.SMTP,
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    to: tuple[Mailbox, ...],
    *,
    user_copy: bool,
) -> list[RecipientResult]:
    try:
        msg = message.build(notification, renderer, sender=config.from_, to=to, user_copy=user_copy)
    except ValueError as exc:  # host data that cannot be a header: no message, no crash
        return [
            RecipientResult.failed(
                str(m),
                FailureKind.PERMANENT,
                f"cannot build the message: {exc}",
                hint="the event's type or title holds a line break or other control "
                "character; fix the event in the host",
            )
            for m in to
        ]
    try:
        refused, reply = await smtp.send_message(
            msg, sender=config.from_.envelope, recipients=[m.envelope for m in to]
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        by_addr = {r.recipient: r for r in exc.recipients}
        return [
            RecipientResult.failed(
                str(m),
                FailureKind.TRANSIENT
                if 400 <= by_addr[m.envelope].code < 500
                else FailureKind.PERMANENT,
                "the server refused this recipient",
                reply=reply_text(by_addr[m.envelope].code, by_addr[m.envelope].message),
                hint="check the address",
            )
            if m.envelope in by_addr
            else classify(exc, config).result(str(m))
            for m in to
        ]
    results = []
    for m in to:
        bad = refused.get(m.envelope)
        if bad is None:
            results.append(RecipientResult.delivered(str(m), reply=reply))
        else:
            results.append(
                RecipientResult.failed(
                    str(m),
                    FailureKind.TRANSIENT if 400 <= bad.code < 500 else FailureKind.PERMANENT,
                    "the server refused this recipient",
                    reply=reply_text(bad.code, bad.message),
                    hint="check the address",
                )
            )
    return results


@hookimpl
async def send(
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    to, results = _recipients(config, recipients)
    if not to:
        return results
    try:
        smtp = transport.client(config)
    except ValueError as exc:
        return results + [ca_file_failure(exc).result(str(m)) for m in to]
    try:
        await smtp.connect()
        try:
            await transport.login(smtp, config)
            results += await _deliver(
                smtp, config, notification, renderer, to, user_copy=recipients is not None
            )
        finally:
            await _quit(smtp)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        failure = classify(exc, config)
        results += [failure.result(str(m)) for m in to]
    return results


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        # out of time (the core's deadline): a polite QUIT could wait another timeout
        smtp.close()
        return
    if smtp.is_connected:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()


def _tls_detail(smtp: aiosmtplib.SMTP) -> str:
    transport_ = smtp.transport
    ssl_object = transport_.get_extra_info("ssl_object") if transport_ else None
    if ssl_object is None:
        return "no TLS"
    cert = ssl_object.getpeercert() or {}
    subject = dict(x[0] for x in cert.get("subject", ())).get("commonName", "?")
    sans = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    who = subject if subject != "?" or not sans else sans[0]
    return f"{ssl_object.version()}, certificate for {who}, expires {cert.get('notAfter', '?')}"


def _with_reply(failure: Failure) -> str:
    return failure.reason + (f" (server said: {failure.reply})" if failure.reply else "")


@hookimpl
async def test(
    config: EmailConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    stages: list[TestStage] = []
    try:
        smtp = transport.client(config)
    except ValueError as exc:
        failure = ca_file_failure(exc)
        return TestReport((TestStage("connect", False, failure.reason, hint=failure.hint),))

    async def stage(name: str, action: Any, detail: Any) -> bool:
        started = time.monotonic()
        try:
            await action()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            failure = classify(exc, config)
            stages.append(
                TestStage(
                    name, False, _with_reply(failure), time.monotonic() - started, failure.hint
                )
            )
            return False
        stages.append(TestStage(name, True, detail(), time.monotonic() - started))
        return True

    where = f"{config.host}:{config.effective_port}"
    started = time.monotonic()
    tls = {
        Security.SSL: "implicit TLS",
        Security.STARTTLS: "STARTTLS required",
        Security.NONE: "no TLS",
    }[config.security]
    try:
        if not await stage(
            "connect", smtp.connect, lambda: f"{where} ({tls}); {_tls_detail(smtp)}"
        ):
            return TestReport(tuple(stages))
        if config.user is not None:
            if not await stage(
                "auth", lambda: transport.login(smtp, config), lambda: f"logged in as {config.user}"
            ):
                return TestReport(tuple(stages))
        else:
            stages.append(TestStage("auth", True, "skipped: no user configured"))
        if not send_message:
            return TestReport(tuple(stages))
        started = time.monotonic()
        deliveries = await _deliver(
            smtp, config, notification, renderer, config.to, user_copy=False
        )
        ok = all(d.status.value == "delivered" for d in deliveries)
        stages.append(
            TestStage(
                "send",
                ok,
                f"test email to {', '.join(str(t) for t in config.to)}"
                if ok
                else "some recipients were refused",
                time.monotonic() - started,
            )
        )
        return TestReport(tuple(stages), tuple(deliveries))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        failure = classify(exc, config)
        stages.append(
            TestStage("send", False, _with_reply(failure), time.monotonic() - started, failure.hint)
        )
        return TestReport(tuple(stages))
    finally:
        await _quit(smtp)
