"""``Notifier.test("hook")`` for Slack: the config and request stages."""

from __future__ import annotations

from typing import Any

from pytest_httpserver import HTTPServer


async def test_posts_the_test_notification(
    answer: Any, make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    answer(body="ok")
    report = await make_notifier(channel="#backups").test("hook")
    assert report.ok, report
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("config", True, f"Slack webhook for #backups at http://localhost:{httpserver.port}"),
        ("request", True, "delivered: 200 OK"),
    ]
    (request,) = received()
    assert request["json"]["text"] == "[DBackup] Test Notification"


async def test_send_message_false_sends_nothing(
    make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    report = await make_notifier().test("hook", send_message=False)
    assert report.ok
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("config", True, f"Slack webhook at http://localhost:{httpserver.port}; no request sent")
    ]
    assert received() == []


async def test_channel_not_found_is_explained(answer: Any, make_notifier: Any) -> None:
    answer(status=404, body="channel_not_found")
    report = await make_notifier(channel="#gone").test("hook")
    assert not report.ok
    request = report.stages[-1]
    assert request.detail == (
        "Slack cannot find the channel to post to (channel_not_found) (reply: 404 NOT FOUND: "
        "channel_not_found)"
    )
    assert request.hint is not None
    assert request.hint.startswith("fix or remove the channel setting")
