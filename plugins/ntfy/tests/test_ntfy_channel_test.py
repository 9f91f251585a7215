"""``Notifier.test("push")`` on an ntfy channel: the stages and what they say."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Notifier, Status, TestReport

TOKEN = "tk_AgHUrLbS2dw4N9mMbQz4vGhEb5xKp"
MakeNotifier = Callable[..., Notifier]


def stages(report: TestReport) -> list[tuple[str, bool, str]]:
    return [(s.name, s.ok, s.detail) for s in report.stages]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


async def test_without_sending_no_request_is_made(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    async with make_notifier(base_url(httpserver), access_token=TOKEN) as notifier:
        report = await notifier.test("push", send_message=False)
    assert report.ok
    assert stages(report) == [
        (
            "config",
            True,
            f"topic dbackup-alerts on http://{httpserver.host}:{httpserver.port}, priority 3, "
            "5 on failure, with an access token; no request sent",
        )
    ]
    assert len(httpserver.log) == 0


async def test_sends_the_test_notification(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_oneshot_request("/dbackup-alerts", method="POST").respond_with_json(
        {"id": "x"}
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        report = await notifier.test("push")
    assert report.ok, report
    assert stages(report) == [
        (
            "config",
            True,
            f"topic dbackup-alerts on http://{httpserver.host}:{httpserver.port}, priority 3, "
            "5 on failure, no access token",
        ),
        ("request", True, "delivered: 200 OK"),
    ]
    assert [d.status for d in report.deliveries] == [Status.DELIVERED]
    request = httpserver.log[0][0]
    assert request.headers["Title"] == "[DBackup] Test Notification"
    assert request.headers["Tags"] == "information_source,test"


async def test_a_refused_token_fails_the_request_stage(
    httpserver: HTTPServer, make_notifier: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/dbackup-alerts").respond_with_data(
        '{"code":40101,"http":401,"error":"unauthorized"}', status=401
    )
    async with make_notifier(base_url(httpserver), access_token=TOKEN) as notifier:
        report = await notifier.test("push")
    assert not report.ok
    assert stages(report)[1] == (
        "request",
        False,
        "the service refused the credentials (reply: 401 UNAUTHORIZED: "
        '{"code":40101,"http":401,"error":"unauthorized"})',
    )
    assert report.stages[1].hint == (
        "check access_token: it must belong to a user allowed to write to this topic"
    )
    assert TOKEN not in repr(report)
    assert TOKEN not in caplog.text
