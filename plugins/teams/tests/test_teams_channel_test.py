"""``Notifier.test("hook")`` for Teams: the config and request stages."""

from __future__ import annotations

from typing import Any

from pytest_httpserver import HTTPServer

from dbnotify import FailureKind


async def test_posts_the_test_notification(
    answer: Any, make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    answer(body="1")
    report = await make_notifier().test("hook")
    assert report.ok, report
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("config", True, f"Teams Incoming Webhook at http://localhost:{httpserver.port}"),
        ("request", True, "delivered: 200 OK: 1"),
    ]
    (request,) = received()
    assert request["json"]["summary"] == "[DBackup] Test Notification"
    assert request["json"]["themeColor"] == "2563eb"


async def test_send_message_false_sends_nothing(
    make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    report = await make_notifier().test("hook", send_message=False)
    assert report.ok
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        (
            "config",
            True,
            f"Teams Incoming Webhook at http://localhost:{httpserver.port}; no request sent",
        )
    ]
    assert received() == []


async def test_a_200_that_did_not_post_fails_the_test(answer: Any, make_notifier: Any) -> None:
    answer(
        body="Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        "HTTP error 413 with ContextId x"
    )
    report = await make_notifier().test("hook")
    assert not report.ok
    request = report.stages[-1]
    assert request.detail == (
        "Teams accepted the request but did not post the card: the service rejected the request "
        "(413 Request Entity Too Large) (reply: 200 OK: Webhook message delivery failed with "
        "error: Microsoft Teams endpoint returned HTTP error 413 with ContextId x)"
    )
    assert request.hint == (
        "the card is larger than Teams takes (about 28 KB); please report it to dbnotify-teams "
        "with the event that caused it"
    )
    (delivery,) = report.deliveries
    assert delivery.kind is FailureKind.PERMANENT
