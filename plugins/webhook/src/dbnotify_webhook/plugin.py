"""The generic webhook channel's hook implementations."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from dbnotify.channel import (
    ChannelInfo,
    ConfigError,
    ConfigIssue,
    FailureKind,
    Notification,
    RecipientResult,
    Renderer,
    TestReport,
    TestStage,
    hookimpl,
    structure,
)
from dbnotify.http import config_stage, deliver, request_stage
from dbnotify_webhook import payload
from dbnotify_webhook.payload import PayloadError
from dbnotify_webhook.settings import CONVERTER, WebhookConfig, is_json

LABEL = "webhook"
"""The one recipient of a webhook channel, as results and the outbox name it."""


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(
        description="Webhook: any HTTP endpoint, with the default JSON body or a template "
        "of your own",
        config_class=WebhookConfig,
        user_delivery=False,
    )


@hookimpl
def validate_config(options: Mapping[str, Any]) -> WebhookConfig:
    try:
        return structure(WebhookConfig, options, converter=CONVERTER)
    except ConfigError as exc:
        # The payload is checked once every field is valid (it depends on content_type):
        # report its problem now too, so that one pass lists every mistake.
        raise ConfigError([*exc.issues, *_payload_issues(options, exc)]) from None


def _payload_issues(options: Mapping[str, Any], exc: ConfigError) -> list[ConfigIssue]:
    template = options.get("payload")
    content_type = options.get("content_type", "application/json")
    if not isinstance(template, str) or any(i.path == "payload" for i in exc.issues):
        return []
    as_json = is_json(content_type) if isinstance(content_type, str) else True
    problem = payload.template_problem(template, as_json=as_json)
    return [ConfigIssue("payload", problem)] if problem else []


def _body(config: WebhookConfig, notification: Notification, renderer: Renderer) -> bytes:
    return payload.body(config.payload, notification, renderer, as_json=config.json)


async def _post(config: WebhookConfig, body: bytes) -> RecipientResult:
    return await deliver(
        LABEL,
        config.method.value,
        config.webhook_url,
        content=body,
        headers=config.request_headers(),
    )


@hookimpl
async def send(
    config: WebhookConfig,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
    retry_only: tuple[str, ...] | None,
) -> Sequence[RecipientResult]:
    """One request to the endpoint (``retry_only`` changes nothing: one recipient)."""
    if recipients is not None:
        return [
            RecipientResult.skipped(r, "a webhook channel cannot deliver to a person's address")
            for r in recipients
        ]
    try:
        body = _body(config, notification, renderer)
    except PayloadError as exc:
        return [RecipientResult.failed(LABEL, FailureKind.PERMANENT, exc.reason, hint=exc.hint)]
    return [await _post(config, body)]


@hookimpl
async def test(
    config: WebhookConfig,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> TestReport:
    """``config``, ``payload`` (rendered and checked, never sent) and ``request``."""
    stages = [
        config_stage(
            config.webhook_url,
            f"{config.method.value} {config.content_type}",
            send_message=send_message,
            started=time.monotonic(),
        )
    ]
    started = time.monotonic()
    try:
        body = _body(config, notification, renderer)
    except PayloadError as exc:
        stages.append(
            TestStage("payload", False, exc.reason, time.monotonic() - started, hint=exc.hint)
        )
        return TestReport(tuple(stages))
    source = "the payload template" if config.payload is not None else "the default body"
    stages.append(
        TestStage(
            "payload",
            True,
            f"{len(body)} bytes of {config.content_type} from {source}",
            time.monotonic() - started,
        )
    )
    if not send_message:
        return TestReport(tuple(stages))
    started = time.monotonic()
    result = await _post(config, body)
    stages.append(request_stage(result, started))
    return TestReport(tuple(stages), (result,))
