"""Delivery to a real local HTTP server standing in for Slack, through ``Notifier``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Event, FailureKind, Notifier, RecipientResult, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify_slack.plugin import send, validate_config

WHEN = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def failure_event() -> Event:
    return Event(
        "backup_failure",
        data={
            "job_name": "nightly_pg",
            "source_name": "pg-main",
            "error": "pg_dump: error: connection to server on socket failed: <!channel> & more",
        },
        timestamp=WHEN,
    )


def only(result: Any) -> RecipientResult:
    (recipient,) = result.recipients
    assert isinstance(recipient, RecipientResult)
    return recipient


async def test_the_exact_request_slack_receives(
    answer: Any, make_notifier: Any, received: Any
) -> None:
    answer(body="ok")
    notifier: Notifier = make_notifier(
        channel="#backups", username="DBackup", icon_emoji=":floppy_disk:"
    )

    result = await notifier.notify(failure_event())

    assert only(result) == RecipientResult.delivered("slack webhook", reply="200 OK")
    (request,) = received()
    assert request["method"] == "POST"
    assert request["headers"]["content-type"] == "application/json"
    error = "pg_dump: error: connection to server on socket failed: &lt;!channel&gt; &amp; more"
    assert request["json"] == {
        "text": "[DBackup] Backup Failed: nightly_pg",
        "mrkdwn": False,
        "channel": "#backups",
        "username": "DBackup",
        "icon_emoji": ":floppy_disk:",
        "attachments": [
            {
                "fallback": "[DBackup] Backup Failed: nightly_pg",
                "color": "#dc2626",
                "title": "Backup Failed",
                "text": f"Backup job 'nightly_pg' failed. Error: {error}",
                "fields": [
                    {"title": "Job", "value": "nightly_pg", "short": True},
                    {"title": "Source", "value": "pg-main", "short": True},
                    {"title": "Error", "value": error, "short": False},
                ],
                "footer": "Sent by DBackup",
                "ts": int(WHEN.timestamp()),
            }
        ],
    }


async def test_without_overrides_the_webhook_defaults_apply(
    answer: Any, make_notifier: Any, received: Any
) -> None:
    answer(body="ok")
    await make_notifier().notify(Event("backup_success", data={"job_name": "x"}, timestamp=WHEN))
    (request,) = received()
    assert set(request["json"]) == {"text", "mrkdwn", "attachments"}
    assert request["json"]["attachments"][0]["color"] == "#16a34a"


@pytest.mark.parametrize(
    ("status", "word", "reason", "hint", "parks"),
    [
        (
            403,
            "invalid_token",
            "Slack refused the webhook's token (revoked, or the URL is wrong) (invalid_token)",
            "create a new incoming webhook in Slack and update webhook_url",
            True,
        ),
        (
            404,
            "channel_not_found",
            "Slack cannot find the channel to post to (channel_not_found)",
            "fix or remove the channel setting (without it the webhook posts to its own "
            "channel); the webhook's own channel may have been deleted",
            False,
        ),
        (
            404,
            "no_service",
            "Slack says this webhook is disabled or was removed (no_service)",
            "create a new incoming webhook in Slack and update webhook_url",
            False,
        ),
        (
            410,
            "channel_is_archived",
            "the Slack channel is archived (channel_is_archived)",
            "unarchive the channel, or create a webhook for another channel",
            False,
        ),
        (
            400,
            "invalid_payload",
            "Slack could not read the message (invalid_payload)",
            "this is a bug in dbnotify-slack; please report it with the reply",
            False,
        ),
    ],
)
async def test_slack_errors_are_permanent_and_explained(
    answer: Any,
    make_notifier: Any,
    status: int,
    word: str,
    reason: str,
    hint: str,
    parks: bool,
) -> None:
    answer(status=status, body=word)
    recipient = only(await make_notifier(channel="#gone").notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.reason == reason
    assert recipient.hint == hint
    assert recipient.parks_channel is parks
    assert recipient.reply is not None
    assert recipient.reply.endswith(f": {word}")


async def test_unknown_4xx_word_keeps_the_generic_explanation(
    answer: Any, make_notifier: Any
) -> None:
    answer(status=400, body="some_new_error")
    recipient = only(await make_notifier().notify(failure_event()))
    assert recipient.kind is FailureKind.PERMANENT
    assert recipient.reason == "the service rejected the request (400 BAD REQUEST)"
    assert recipient.reply == "400 BAD REQUEST: some_new_error"


async def test_rate_limited_is_transient_with_retry_after(answer: Any, make_notifier: Any) -> None:
    answer(status=429, body="rate_limited", headers={"Retry-After": "30"})
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.retry_after == 30.0


async def test_server_error_is_transient(answer: Any, make_notifier: Any) -> None:
    answer(status=500, body="rollup_error")
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == "the service failed (500 INTERNAL SERVER ERROR)"


async def test_unauthorized_parks_the_channel(answer: Any, make_notifier: Any) -> None:
    answer(status=401, body="")
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.kind, recipient.parks_channel) == (FailureKind.PERMANENT, True)


async def test_closed_port_is_transient(make_notifier: Any, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/services/T0/B0/s3cr3t-t0ken-0f-th3-h00k"
    recipient = only(await make_notifier(webhook_url=url).notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_the_token_never_appears_in_results(
    answer: Any, make_notifier: Any, token: str
) -> None:
    answer(status=403, body=f"invalid_token {token}")
    notifier = make_notifier()
    result = await notifier.notify(failure_event())
    assert only(result).reply == "403 FORBIDDEN: invalid_token ********"
    assert token not in repr(result) + repr(notifier.config)


async def test_the_token_never_appears_in_logs(
    answer: Any, make_notifier: Any, token: str, client_logs: Any
) -> None:
    answer(body="ok")
    await make_notifier().notify(failure_event())
    assert token not in client_logs()


async def test_send_hook_returns_one_result_and_skips_users(
    answer: Any, hook_url: str, httpserver: HTTPServer
) -> None:
    answer(body="ok")
    config = validate_config({"webhook_url": hook_url})
    notification = to_notification(failure_event())
    results = await send(config, notification, Renderer(), None, ("slack webhook",))
    assert [(r.recipient, r.status) for r in results] == [("slack webhook", Status.DELIVERED)]
    assert await send(config, notification, Renderer(), ("a@example.com",), None) == [
        RecipientResult.skipped(
            "a@example.com", "a Slack channel cannot deliver to a person's address"
        )
    ]
    assert len(httpserver.log) == 1
