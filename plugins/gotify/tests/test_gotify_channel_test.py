"""``Notifier.test("push")`` on a Gotify channel: the stages and what they say."""

from __future__ import annotations

from collections.abc import Callable

from pytest_httpserver import HTTPServer

from dbnotify import Notifier, Status, TestReport

MakeNotifier = Callable[..., Notifier]


def stages(report: TestReport) -> list[tuple[str, bool, str]]:
    return [(s.name, s.ok, s.detail) for s in report.stages]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


async def test_without_sending_no_request_is_made(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    async with make_notifier(base_url(httpserver)) as notifier:
        report = await notifier.test("push", send_message=False)
    assert report.ok
    assert stages(report) == [
        (
            "config",
            True,
            f"server http://{httpserver.host}:{httpserver.port}, priority 5, 8 on failure; "
            "no request sent",
        )
    ]
    assert report.deliveries == ()
    assert len(httpserver.log) == 0


async def test_sends_the_test_notification(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_oneshot_request("/message", method="POST").respond_with_json({"id": 3})
    async with make_notifier(base_url(httpserver), priority=2) as notifier:
        report = await notifier.test("push")
    assert report.ok, report
    assert stages(report) == [
        (
            "config",
            True,
            f"server http://{httpserver.host}:{httpserver.port}, priority 2, 8 on failure",
        ),
        ("request", True, "delivered: 200 OK"),
    ]
    assert report.stages[1].duration > 0
    assert [d.status for d in report.deliveries] == [Status.DELIVERED]
    body = httpserver.log[0][0].get_json()
    assert body["title"] == "[DBackup] Test Notification"
    assert body["priority"] == 2
    assert "If you can read it, the channel works." in body["message"]


async def test_a_refused_token_fails_the_request_stage(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request("/message").respond_with_data(
        '{"error":"Unauthorized","errorCode":401,"errorDescription":"invalid token"}',
        status=401,
        content_type="application/json",
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        report = await notifier.test("push")
    assert not report.ok
    config, request = report.stages
    assert config.ok
    assert request.name == "request"
    assert request.ok is False
    assert request.detail == (
        "the service refused the credentials (reply: 401 UNAUTHORIZED: "
        '{"error":"Unauthorized","errorCode":401,"errorDescription":"invalid token"})'
    )
    assert request.hint is not None
    assert request.hint.startswith("check app_token")
    (delivery,) = report.deliveries
    assert delivery.status is Status.FAILED
    assert delivery.parks_channel


async def test_an_unreachable_server_fails_the_request_stage(
    closed_port: int, make_notifier: MakeNotifier
) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}") as notifier:
        report = await notifier.test("push")
    assert not report.ok
    assert stages(report)[1] == (
        "request",
        False,
        f"connection refused by 127.0.0.1:{closed_port}",
    )
    assert report.stages[1].hint == (
        "nothing accepts connections there: check the URL's host and port, and that the "
        "service is running and reachable from here (firewall, proxy)"
    )
