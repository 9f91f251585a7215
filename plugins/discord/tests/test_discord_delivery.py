"""Delivery to a real local HTTP server standing in for Discord, through ``Notifier``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dbnotify import Event, FailureKind, Notifier, RecipientResult, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify_discord.plugin import send, validate_config

WHEN = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def failure_event() -> Event:
    return Event(
        "backup_failure",
        data={"job_name": "nightly_pg", "source_name": "pg-main", "error": "disk *full*"},
        timestamp=WHEN,
    )


def only(result: Any) -> RecipientResult:
    (recipient,) = result.recipients
    assert isinstance(recipient, RecipientResult)
    return recipient


async def test_the_exact_request_discord_receives(
    answer: Any, make_notifier: Any, received: Any
) -> None:
    answer(status=204)
    notifier: Notifier = make_notifier(
        username="DBackup", avatar_url="https://example.com/dbackup.png"
    )

    result = await notifier.notify(failure_event())

    assert only(result) == RecipientResult.delivered("discord webhook", reply="204 NO CONTENT")
    (request,) = received()
    assert request["method"] == "POST"
    assert request["headers"]["content-type"] == "application/json"
    assert request["json"] == {
        "username": "DBackup",
        "avatar_url": "https://example.com/dbackup.png",
        "embeds": [
            {
                "title": "Backup Failed",
                "description": "Backup job 'nightly\\_pg' failed. Error: disk \\*full\\*",
                "color": 0xDC2626,
                "fields": [
                    {"name": "Job", "value": "nightly\\_pg", "inline": True},
                    {"name": "Source", "value": "pg-main", "inline": True},
                    {"name": "Error", "value": "disk \\*full\\*", "inline": True},
                ],
                "timestamp": "2025-03-04T05:06:07+00:00",
                "footer": {"text": "Sent by DBackup"},
            }
        ],
        "allowed_mentions": {"parse": []},
    }


async def test_without_username_and_avatar_the_webhook_defaults_apply(
    answer: Any, make_notifier: Any, received: Any
) -> None:
    answer(status=204)
    await make_notifier().notify(Event("backup_success", data={"job_name": "x"}, timestamp=WHEN))
    (request,) = received()
    assert set(request["json"]) == {"embeds", "allowed_mentions"}
    (sent,) = request["json"]["embeds"]
    assert sent["color"] == 0x16A34A
    assert sent["title"] == "Backup Successful"


async def test_mentions_in_event_data_never_ping(
    answer: Any, make_notifier: Any, received: Any
) -> None:
    answer(status=204)
    event = Event(
        "system_error", data={"component": "@everyone", "error": "<@&123> <@456>"}, timestamp=WHEN
    )
    await make_notifier().notify(event)
    (request,) = received()
    assert request["json"]["allowed_mentions"] == {"parse": []}
    assert "content" not in request["json"]
    assert request["json"]["embeds"][0]["description"] == (
        "An error occurred in @everyone: \\<@&123> \\<@456>"
    )


async def test_rate_limited_is_transient_with_retry_after(answer: Any, make_notifier: Any) -> None:
    answer(
        status=429,
        body='{"message": "You are being rate limited.", "retry_after": 2.5, "global": false}',
        headers={"Retry-After": "3"},
    )
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.retry_after == 3.0
    assert recipient.reason == "rate limited by the service; it asks to wait 3s"


async def test_server_error_is_transient(answer: Any, make_notifier: Any) -> None:
    answer(status=502, body="Bad Gateway")
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.parks_channel is False


async def test_invalid_token_is_permanent_and_parks_the_channel(
    answer: Any, make_notifier: Any
) -> None:
    answer(status=401, body='{"message": "Invalid Webhook Token", "code": 50027}')
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.parks_channel is True
    assert recipient.reply == (
        '401 UNAUTHORIZED: {"message": "Invalid Webhook Token", "code": 50027}'
    )


async def test_deleted_webhook_is_permanent(answer: Any, make_notifier: Any) -> None:
    answer(status=404, body='{"message": "Unknown Webhook", "code": 10015}')
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.parks_channel is False
    assert recipient.hint == "create the webhook again and update the configuration"


async def test_invalid_form_body_is_permanent(answer: Any, make_notifier: Any) -> None:
    answer(status=400, body='{"code": 50035, "message": "Invalid Form Body"}')
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.reason == "the service rejected the request (400 BAD REQUEST)"


async def test_closed_port_is_transient(make_notifier: Any, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/api/webhooks/1/s3cr3t-t0ken-0f-th3-h00k"
    recipient = only(await make_notifier(webhook_url=url).notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_the_token_never_appears_in_results(
    answer: Any, make_notifier: Any, token: str
) -> None:
    answer(status=404, body=f'{{"message": "Unknown Webhook {token}"}}')
    notifier = make_notifier()
    result = await notifier.notify(failure_event())
    assert only(result).reply == '404 NOT FOUND: {"message": "Unknown Webhook ********"}'
    assert token not in repr(result) + repr(notifier.config)


async def test_the_token_never_appears_in_logs(
    answer: Any, make_notifier: Any, token: str, client_logs: Any
) -> None:
    answer(status=204)
    await make_notifier().notify(failure_event())
    assert token not in client_logs()


async def test_send_hook_returns_one_result_and_skips_users(answer: Any, hook_url: str) -> None:
    answer(status=204)
    config = validate_config({"webhook_url": hook_url})
    notification = to_notification(failure_event())
    assert [r.recipient for r in await send(config, notification, Renderer(), None, None)] == [
        "discord webhook"
    ]
    assert await send(config, notification, Renderer(), ("a@example.com",), None) == [
        RecipientResult.skipped(
            "a@example.com", "a Discord channel cannot deliver to a person's address"
        )
    ]
