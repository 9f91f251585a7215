"""``Notifier.test("hook")`` for Discord: the config and request stages."""

from __future__ import annotations

from typing import Any

from pytest_httpserver import HTTPServer

from dbnotify import Status


async def test_posts_the_test_notification(
    answer: Any, make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    answer(status=204)
    report = await make_notifier().test("hook")
    assert report.ok, report
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("config", True, f"Discord webhook at http://localhost:{httpserver.port}"),
        ("request", True, "delivered: 204 NO CONTENT"),
    ]
    assert [d.status for d in report.deliveries] == [Status.DELIVERED]
    (request,) = received()
    assert request["json"]["embeds"][0]["title"] == "Test Notification"


async def test_send_message_false_sends_nothing(
    make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    report = await make_notifier().test("hook", send_message=False)
    assert report.ok
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("config", True, f"Discord webhook at http://localhost:{httpserver.port}; no request sent")
    ]
    assert report.deliveries == ()
    assert received() == []


async def test_deleted_webhook_reports_reason_reply_and_hint(
    answer: Any, make_notifier: Any
) -> None:
    answer(status=404, body='{"message": "Unknown Webhook", "code": 10015}')
    report = await make_notifier().test("hook")
    assert not report.ok
    request = report.stages[-1]
    assert (request.name, request.ok) == ("request", False)
    assert request.detail == (
        "the service does not know this address (webhook deleted, or wrong URL) (reply: 404 NOT "
        'FOUND: {"message": "Unknown Webhook", "code": 10015})'
    )
    assert request.hint == "create the webhook again and update the configuration"
