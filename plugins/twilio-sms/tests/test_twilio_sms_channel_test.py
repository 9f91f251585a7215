"""``Notifier.test("sms")`` on a Twilio SMS channel: the stages and what they say."""

from __future__ import annotations

import json
from collections.abc import Callable

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from dbnotify import Notifier, Status, TestReport

SID = "AC" + "0123456789abcdef" * 2
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
FIRST, SECOND = "+4915112345678", "+4917612345678"
MakeNotifier = Callable[..., Notifier]


def stages(report: TestReport) -> list[tuple[str, bool, str]]:
    return [(s.name, s.ok, s.detail) for s in report.stages]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


async def test_without_sending_no_request_is_made(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    async with make_notifier(base_url(httpserver)) as notifier:
        report = await notifier.test("sms", send_message=False)
    assert report.ok
    assert stages(report) == [
        (
            "config",
            True,
            f"2 numbers ({FIRST}, {SECOND}), from +15017122661, via "
            f"http://{httpserver.host}:{httpserver.port}; no request sent",
        )
    ]
    assert len(httpserver.log) == 0


async def test_sends_the_test_sms_to_every_number(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data(
        '{"sid": "SM1", "status": "queued"}', status=201, content_type="application/json"
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        report = await notifier.test("sms")
    assert report.ok, report
    assert stages(report) == [
        (
            "config",
            True,
            f"2 numbers ({FIRST}, {SECOND}), from +15017122661, via "
            f"http://{httpserver.host}:{httpserver.port}",
        ),
        ("request", True, f"delivered: {FIRST} 201 CREATED, {SECOND} 201 CREATED"),
    ]
    assert [(d.recipient, d.status) for d in report.deliveries] == [
        (FIRST, Status.DELIVERED),
        (SECOND, Status.DELIVERED),
    ]
    assert {r.form["Body"] for r, _ in httpserver.log} == {"[DBackup] Test Notification"}


async def test_one_refused_number_fails_the_request_stage(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    def answer(request: Request) -> Response:
        if request.form["To"] == SECOND:
            body = {
                "code": 21608,
                "message": "The number is unverified. Trial accounts cannot send messages to "
                "unverified numbers",
                "more_info": "https://www.twilio.com/docs/errors/21608",
                "status": 400,
            }
            return Response(json.dumps(body), status=400, content_type="application/json")
        return Response('{"sid": "SM1"}', status=201, content_type="application/json")

    httpserver.expect_request(PATH).respond_with_handler(answer)
    async with make_notifier(base_url(httpserver)) as notifier:
        report = await notifier.test("sms")
    assert not report.ok
    assert stages(report)[1] == (
        "request",
        False,
        f"{SECOND}: Twilio refused the message: The number is unverified. Trial accounts "
        "cannot send messages to unverified numbers (error 21608)",
    )
    assert report.stages[1].hint == (
        "a trial account sends only to verified numbers: verify this number in the Twilio "
        "Console, or upgrade the account"
    )
    assert [d.status for d in report.deliveries] == [Status.DELIVERED, Status.FAILED]


async def test_an_unreachable_api(closed_port: int, make_notifier: MakeNotifier) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}", to=FIRST) as notifier:
        report = await notifier.test("sms")
    assert stages(report)[1] == (
        "request",
        False,
        f"{FIRST}: connection refused by 127.0.0.1:{closed_port}",
    )
