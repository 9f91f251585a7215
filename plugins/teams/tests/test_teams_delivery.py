"""Delivery to a real local HTTP server standing in for a Teams connector."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from dbnotify import Event, FailureKind, Notifier, RecipientResult, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify_teams import card, connector
from dbnotify_teams.card import escape
from dbnotify_teams.plugin import send, validate_config

WHEN = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
DELIVERY_FAILED = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP "
    "error {status} with ContextId tcid=0,server=msgapi-production-x,cv=abc.0.."
)


def failure_event(error: str = "disk full") -> Event:
    return Event(
        "backup_failure",
        data={"job_name": "nightly_pg", "source_name": "pg-main", "error": error},
        timestamp=WHEN,
    )


def only(result: Any) -> RecipientResult:
    (recipient,) = result.recipients
    assert isinstance(recipient, RecipientResult)
    return recipient


async def test_the_exact_card_teams_receives(
    answer: Any, make_notifier: Any, received: Any
) -> None:
    answer(body="1")
    notifier: Notifier = make_notifier()

    result = await notifier.notify(failure_event("line one\n*bad* <b>x</b> & #2"))

    assert only(result) == RecipientResult.delivered("teams webhook", reply="200 OK: 1")
    (request,) = received()
    assert request["method"] == "POST"
    assert request["headers"]["content-type"] == "application/json"
    error = "line one\n\n\\*bad\\* &lt;b&gt;x&lt;/b&gt; &amp; \\#2"
    assert request["json"] == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": "dc2626",
        "summary": "[DBackup] Backup Failed: nightly_pg",
        "title": "Backup Failed",
        "text": f"Backup job 'nightly\\_pg' failed. Error: {error}",
        "sections": [
            {
                "facts": [
                    {"name": "Job", "value": "nightly\\_pg"},
                    {"name": "Source", "value": "pg-main"},
                    {"name": "Error", "value": error},
                ]
            }
        ],
    }


def test_escape() -> None:
    assert escape("a_b *c* `d` [e](f) ~g~ \\ #h") == (
        "a\\_b \\*c\\* \\`d\\` \\[e\\](f) \\~g\\~ \\\\ \\#h"
    )
    assert escape("x\r\ny\nz") == "x\n\ny\n\nz"


async def test_no_fields_no_facts(answer: Any, make_notifier: Any, received: Any) -> None:
    answer(body="1")
    await make_notifier().notify(
        Event("custom", title="Hello", message="m", severity="info", timestamp=WHEN)
    )
    (request,) = received()
    assert request["json"]["sections"] == []
    assert request["json"]["themeColor"] == "2563eb"


@pytest.mark.parametrize(
    ("inner", "kind", "parks"),
    [
        (429, FailureKind.TRANSIENT, False),
        (500, FailureKind.TRANSIENT, False),
        (413, FailureKind.PERMANENT, False),
        (400, FailureKind.PERMANENT, False),
        (403, FailureKind.PERMANENT, True),
    ],
)
async def test_200_with_a_failure_is_not_delivered(
    answer: Any, make_notifier: Any, inner: int, kind: FailureKind, parks: bool
) -> None:
    answer(body=DELIVERY_FAILED.format(status=inner))
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind, recipient.parks_channel) == (
        Status.FAILED,
        kind,
        parks,
    )
    assert recipient.reason is not None
    assert recipient.reason.startswith("Teams accepted the request but did not post the card: ")
    assert recipient.reply == "200 OK: " + DELIVERY_FAILED.format(status=inner)


async def test_200_rate_limited_reason(answer: Any, make_notifier: Any) -> None:
    answer(body=DELIVERY_FAILED.format(status=429))
    recipient = only(await make_notifier().notify(failure_event()))
    assert recipient.reason == (
        "Teams accepted the request but did not post the card: rate limited by the service"
    )
    assert recipient.hint == (
        "Teams limits how often a connector may post (a few messages a second); the outbox "
        "retries later; send fewer notifications to this channel"
    )
    assert recipient.retry_after is None


async def test_200_with_an_unexpected_body_is_transient(answer: Any, make_notifier: Any) -> None:
    answer(body="Webhook message delivery failed with error: Error contacting Microsoft Teams")
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == "Teams answered 200 OK without confirming that it posted the card"


async def test_empty_2xx_is_delivered(answer: Any, make_notifier: Any) -> None:
    answer(status=202, body="")
    recipient = only(await make_notifier().notify(failure_event()))
    assert recipient == RecipientResult.delivered("teams webhook", reply="202 ACCEPTED")


async def test_real_429_with_retry_after(answer: Any, make_notifier: Any) -> None:
    answer(status=429, body="Too many requests", headers={"Retry-After": "12"})
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.kind, recipient.retry_after) == (FailureKind.TRANSIENT, 12.0)


async def test_real_500_is_transient(answer: Any, make_notifier: Any) -> None:
    answer(status=500, body="oops")
    recipient = only(await make_notifier().notify(failure_event()))
    assert recipient.kind is FailureKind.TRANSIENT


async def test_real_401_parks_the_channel(answer: Any, make_notifier: Any) -> None:
    answer(status=401, body="Unauthorized")
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.kind, recipient.parks_channel) == (FailureKind.PERMANENT, True)


async def test_bad_payload_400_is_permanent(answer: Any, make_notifier: Any) -> None:
    answer(status=400, body="Bad payload received by generic incoming webhook.")
    recipient = only(await make_notifier().notify(failure_event()))
    assert recipient.kind is FailureKind.PERMANENT
    assert recipient.reply == "400 BAD REQUEST: Bad payload received by generic incoming webhook."


async def test_404_is_permanent(answer: Any, make_notifier: Any) -> None:
    answer(status=404, body="")
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.kind, recipient.parks_channel) == (FailureKind.PERMANENT, False)


async def test_closed_port_is_transient(make_notifier: Any, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/webhookb2/x/IncomingWebhook/s3cr3t-t0ken-0f-th3-h00k"
    recipient = only(await make_notifier(webhook_url=url).notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_slow_connector_is_transient(httpserver: HTTPServer, hook_url: str) -> None:
    def slow(_request: Request) -> Response:
        time.sleep(0.5)
        return Response("1")

    httpserver.expect_request("/hooks/1234/s3cr3t-t0ken-0f-th3-h00k").respond_with_handler(slow)
    config = validate_config({"webhook_url": hook_url})
    result = await connector.post("teams webhook", config.webhook_url, {}, timeout=0.1)
    assert (result.status, result.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert result.reason == f"no answer from http://localhost:{httpserver.port} within 0.1s"


def test_long_texts_are_cut() -> None:
    notification = to_notification(
        Event("custom", title="T" * 300, message="m" * 20_000, fields={"F": "v" * 5000})
    )
    built = card.message_card(notification, Renderer())
    assert built["title"] == "T" * 255 + "…"
    assert built["text"] == "m" * 9_999 + "…"
    assert built["sections"][0]["facts"][0]["value"] == "v" * 999 + "…"
    assert len(json.dumps(built)) < 28_000


async def test_the_token_never_appears_in_results(
    answer: Any, make_notifier: Any, token: str
) -> None:
    answer(body=f"Webhook message delivery failed for {token}: HTTP error 400")
    notifier = make_notifier()
    result = await notifier.notify(failure_event())
    assert only(result).reply == (
        "200 OK: Webhook message delivery failed for ********: HTTP error 400"
    )
    assert token not in repr(result) + repr(notifier.config)


async def test_a_token_across_the_200_character_cut_is_masked(
    answer: Any, make_notifier: Any, token: str
) -> None:
    """Masked before the reply is cut: a cut token would leave its start."""
    lead = "x" * (200 - 8 - len(token) // 2)
    answer(body=f"{lead} {token} HTTP error 400")
    result = await make_notifier().notify(failure_event())
    assert only(result).reply == "200 OK: " + f"{lead} ******** HTTP error 400"[:200]
    assert token[: len(token) // 2] not in repr(result)


async def test_the_token_never_appears_in_logs(
    answer: Any, make_notifier: Any, token: str, client_logs: Any
) -> None:
    answer(body="1")
    await make_notifier().notify(failure_event())
    assert token not in client_logs()


async def test_send_hook_returns_one_result_and_skips_users(answer: Any, hook_url: str) -> None:
    answer(body="1")
    config = validate_config({"webhook_url": hook_url})
    notification = to_notification(failure_event())
    results = await send(config, notification, Renderer(), None, None)
    assert [(r.recipient, r.status) for r in results] == [("teams webhook", Status.DELIVERED)]
    assert await send(config, notification, Renderer(), ("a@example.com",), None) == [
        RecipientResult.skipped(
            "a@example.com", "a Teams channel cannot deliver to a person's address"
        )
    ]
