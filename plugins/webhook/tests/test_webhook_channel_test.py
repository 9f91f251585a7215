"""``Notifier.test("hook")``: config, payload and request stages against a real server."""

from __future__ import annotations

from typing import Any

from pytest_httpserver import HTTPServer

from dbnotify import FailureKind, Status, TestReport


def stages(report: TestReport) -> list[tuple[str, bool, str]]:
    return [(s.name, s.ok, s.detail) for s in report.stages]


async def test_sends_the_test_notification(
    answer: Any, make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    answer(status=202, body="queued")
    report = await make_notifier().test("hook")

    assert report.ok, report
    (config, body, request) = report.stages
    assert (config.name, config.ok) == ("config", True)
    assert config.detail == f"POST application/json at http://localhost:{httpserver.port}"
    assert (body.name, body.ok) == ("payload", True)
    assert body.detail.endswith(" bytes of application/json from the default body")
    assert (request.name, request.ok, request.detail) == (
        "request",
        True,
        "delivered: 202 ACCEPTED",
    )
    assert [d.status for d in report.deliveries] == [Status.DELIVERED]
    (sent,) = received()
    assert sent["json"]["event_type"] == "test"
    assert sent["json"]["title"] == "Test Notification"
    assert int(body.detail.split()[0]) == len(sent["body"])


async def test_send_message_false_renders_but_sends_nothing(
    make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    report = await make_notifier(payload='{"text": "{{ subject }}"}').test(
        "hook", send_message=False
    )
    assert report.ok, report
    assert stages(report) == [
        (
            "config",
            True,
            f"POST application/json at http://localhost:{httpserver.port}; no request sent",
        ),
        ("payload", True, "39 bytes of application/json from the payload template"),
    ]
    assert report.deliveries == ()
    assert received() == []


async def test_refused_credentials_are_reported_with_reply_and_hint(
    answer: Any, make_notifier: Any
) -> None:
    answer(status=401, body='{"error": "invalid token"}')
    report = await make_notifier(auth_header="Bearer nope").test("hook")

    assert not report.ok
    request = report.stages[-1]
    assert (request.name, request.ok) == ("request", False)
    assert request.detail == (
        'the service refused the credentials (reply: 401 UNAUTHORIZED: {"error": "invalid token"})'
    )
    assert request.hint == "check the token or webhook URL; it may have been revoked"
    (delivery,) = report.deliveries
    assert (delivery.kind, delivery.parks_channel) == (FailureKind.PERMANENT, True)


async def test_unreachable(make_notifier: Any, closed_port: int) -> None:
    report = await make_notifier(
        webhook_url=f"http://127.0.0.1:{closed_port}/x/TOKENTOKENTOKEN1"
    ).test("hook")
    assert not report.ok
    request = report.stages[-1]
    assert request.detail == f"connection refused by 127.0.0.1:{closed_port}"
    assert request.hint == (
        "nothing accepts connections there: check the URL's host and port, and that the "
        "service is running and reachable from here (firewall, proxy)"
    )


async def test_payload_failure_stops_before_the_request(make_notifier: Any, received: Any) -> None:
    # valid for the load-time sample (a failure), not for the test notification (info)
    notifier = make_notifier(
        payload='{% if severity == "failure" %}{}{% else %}{"x": {{ title }}}{% endif %}'
    )
    report = await notifier.test("hook")
    assert not report.ok
    assert [(s.name, s.ok) for s in report.stages] == [("config", True), ("payload", False)]
    assert report.stages[-1].detail == (
        "the payload template did not render valid JSON: Expecting value at line 1 column 7, "
        "near '{\"x\": Test Notification}'"
    )
    assert received() == []
