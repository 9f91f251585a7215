"""Twilio SMS delivery against a real local HTTP server standing in for Twilio's REST API:
one request per number, what Twilio receives, and one result per number."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from dbnotify import Event, FailureKind, Notifier, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify.plugins import default_registry
from dbnotify_twilio_sms.plugin import sms_body

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f00dcafe" * 4
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
FIRST, SECOND = "+4915112345678", "+4917612345678"

MakeNotifier = Callable[..., Notifier]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def twilio_error(status: int, code: int, message: str) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response(json.dumps(body), status=status, content_type="application/json")


def created(request: Request) -> Response:
    body = {"sid": "SM" + "1" * 32, "status": "queued", "to": request.form["To"]}
    return Response(json.dumps(body), status=201, content_type="application/json")


def by_number(answers: dict[str, Callable[[Request], Response]]) -> Callable[[Request], Response]:
    """A Twilio that answers each ``To`` its own way (201 Created for the others)."""

    def handle(request: Request) -> Response:
        return answers.get(request.form["To"], created)(request)

    return handle


def sent_to(server: HTTPServer) -> list[str]:
    return sorted(request.form["To"] for request, _response in server.log)


async def test_what_twilio_receives(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_handler(created)
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)

    assert result.ok, result
    assert [(r.recipient, r.status, r.reply) for r in result.recipients] == [
        (FIRST, Status.DELIVERED, "201 CREATED"),
        (SECOND, Status.DELIVERED, "201 CREATED"),
    ]
    assert sent_to(httpserver) == [FIRST, SECOND]
    for request, _response in httpserver.log:
        assert request.method == "POST"
        assert request.path == PATH
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert (
            request.headers["Authorization"]
            == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        )
        assert request.form.to_dict() == {
            "From": "+15017122661",
            "To": request.form["To"],
            "Body": "[DBackup] Backup Failed: nightly-pg\nJob: nightly-pg\nError: disk full",
        }


async def test_a_messaging_service_is_sent_as_messaging_service_sid(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_handler(created)
    service = "MG" + "9" * 32
    async with make_notifier(base_url(httpserver), to=FIRST, **{"from": service}) as notifier:
        assert (await notifier.notify(failure_event)).ok
    ((request, _response),) = httpserver.log
    assert request.form.to_dict() == {
        "MessagingServiceSid": service,
        "To": FIRST,
        "Body": "[DBackup] Backup Failed: nightly-pg\nJob: nightly-pg\nError: disk full",
    }


def test_only_the_first_fields_that_fit() -> None:
    notification = to_notification(
        Event(
            "custom",
            title="Replication lag",
            fields={"Host": "db-1", "Detail": "x" * 280, "Lag": "12s"},
            severity="warning",
        )
    )
    # Detail does not fit: the body stops there, and Lag (short) is not taken out of order
    assert sms_body(notification, Renderer()) == "[DBackup] Replication lag\nHost: db-1"


def test_the_body_is_at_most_320_characters() -> None:
    fields = {f"F{i}": "v" * 20 for i in range(30)}
    notification = to_notification(Event("custom", title="Many", fields=fields))
    body = sms_body(notification, Renderer())
    assert len(body) <= 320
    assert body.endswith("v" * 20)  # cut at a field boundary
    assert body.count("\n") == 12  # 14 + 10 x 25 + 2 x 26 = 316; a 13th would make 342


def test_a_subject_too_long_for_an_sms_is_cut() -> None:
    notification = to_notification(Event("custom", title="T" * 400))
    body = sms_body(notification, Renderer())
    assert len(body) == 320
    assert body.endswith("T...")


def test_field_values_are_one_line() -> None:
    notification = to_notification(
        Event("backup_failure", {"job_name": "pg", "error": "line one\nline two\r\n\ttab"})
    )
    assert sms_body(notification, Renderer()) == (
        "[DBackup] Backup Failed: pg\nJob: pg\nError: line one line two tab"
    )


async def test_one_result_per_number(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_handler(
        by_number(
            {
                SECOND: lambda _r: twilio_error(
                    400, 21211, f"Invalid 'To' Phone Number: {SECOND[:6]}XXXX"
                )
            }
        )
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)
    first, second = result.recipients
    assert (first.recipient, first.status) == (FIRST, Status.DELIVERED)
    assert second.recipient == SECOND
    assert second.status is Status.FAILED
    assert second.kind is FailureKind.PERMANENT
    assert second.parks_channel is False
    assert second.reason == (
        "Twilio refused the message: Invalid 'To' Phone Number: +49176XXXX (error 21211)"
    )
    assert second.reply == "400 Invalid 'To' Phone Number: +49176XXXX (error 21211)"
    assert second.hint == "check this number in to: + and the country code, then the number"


async def test_a_long_error_is_shown_whole(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """Read from the whole answer, not from the 200 characters of a generic reply."""
    message = (
        f"The number {FIRST} is unverified. Trial accounts cannot send messages to "
        f"unverified numbers; verify {FIRST} at twilio.com/user/account/phone-numbers/"
        "verified, or purchase a Twilio number to send messages to unverified numbers"
    )
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _r: twilio_error(400, 21608, message)
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.reason == f"Twilio refused the message: {message} (error 21608)"
    assert failed.reply == f"400 {message} (error 21608)"
    assert failed.hint == (
        "a trial account sends only to verified numbers: verify this number in the Twilio "
        "Console, or upgrade the account"
    )


async def test_a_code_after_a_long_message_is_read(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """The code comes after the first 200 characters: it still gives the hint, and a bad
    sender still parks the channel."""
    message = "'From' +15017122661 is not a Twilio phone number or Short Code. " * 4
    body = json.dumps(
        {
            "message": message,
            "code": 21659,
            "more_info": "https://www.twilio.com/docs/errors/21659",
            "status": 400,
        }
    )
    assert body.index('"code"') > 200
    httpserver.expect_request(PATH).respond_with_data(
        body, status=400, content_type="application/json"
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.reason == f"Twilio refused the message: {message} (error 21659)"
    assert failed.hint == "check from: it must be a Twilio number of this account that can send SMS"
    assert failed.parks_channel is True


async def test_an_answer_that_is_not_json_gets_the_generic_reading(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        "<html><body>Bad Request</body></html>", status=400, content_type="text/html"
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.reason == "the service rejected the request (400 BAD REQUEST)"
    assert failed.reply == "400 BAD REQUEST: <html><body>Bad Request</body></html>"
    assert failed.hint == "this channel's settings do not fit what the service expects"


async def test_the_auth_token_in_a_long_message_never_shows(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _r: twilio_error(401, 20003, "Authenticate " + "x" * 250 + f" {TOKEN}")
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.reason == (
        "Twilio refused the message: Authenticate " + "x" * 250 + " ******** (error 20003)"
    )
    assert TOKEN not in repr(failed)


async def test_retry_only_reaches_only_the_named_numbers(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_handler(created)
    async with make_notifier(base_url(httpserver)) as notifier:
        delivery = notifier.config.channels["sms"]
        plugin = notifier.plugins.get("twilio-sms")
        assert plugin is not None
        notification = to_notification(failure_event)
        results = await plugin.send(
            delivery.config, notification, notifier.renderer, None, (SECOND, "+33612345678")
        )
    assert sent_to(httpserver) == [SECOND]
    assert [(r.recipient, r.status) for r in results] == [
        (SECOND, Status.DELIVERED),
        ("+33612345678", Status.SKIPPED),
    ]
    assert results[1].reason == "no longer a recipient of this channel"


async def test_the_outbox_retries_only_the_number_that_failed(
    httpserver: HTTPServer, failure_event: Event, tmp_path: Path
) -> None:
    """Durable mode: the second number's 503 is retried by the worker, to that number
    alone, with the same text; the first number gets one SMS."""
    answered: dict[str, int] = {}

    def flaky(request: Request) -> Response:
        number = request.form["To"]
        answered[number] = answered.get(number, 0) + 1
        if number == SECOND and answered[number] == 1:
            return Response("busy", status=503)
        return created(request)

    httpserver.expect_request(PATH).respond_with_handler(flaky)
    notifier = Notifier.from_config(
        {
            "channels": {
                "sms": {
                    "type": "twilio-sms",
                    "api_url": base_url(httpserver),
                    "account_sid": SID,
                    "auth_token": TOKEN,
                    "from": "+15017122661",
                    "to": [FIRST, SECOND],
                }
            },
            "routing": {"channels": ["sms"]},
            "dispatch": {"deadline": 5},
            "outbox": {
                "path": str(tmp_path / "outbox.sqlite"),
                "retry": {"default": {"first_delay": 0.2, "max_delay": 0.2}},
            },
        }
    )
    result = await notifier.notify(failure_event)
    assert [r.status for r in result.recipients] == [Status.QUEUED]
    outbox = notifier.outbox
    assert outbox is not None
    notifier.start()
    try:
        end = time.monotonic() + 10
        while answered.get(SECOND, 0) < 2 or (await outbox.counts())["pending"]:
            assert time.monotonic() < end, answered
            await asyncio.sleep(0.02)
    finally:
        await notifier.aclose()
    assert answered == {FIRST: 1, SECOND: 2}
    bodies = {request.form["Body"] for request, _response in httpserver.log}
    assert len(bodies) == 1  # the same text on the retry
    rows = await notifier.history(delivery_ids=result.delivery_ids)
    assert {r.recipient: (r.status, r.attempts) for r in rows} == {
        FIRST: ("delivered", 1),
        SECOND: ("delivered", 2),
    }


async def test_429_is_transient_with_retry_after(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    def limited(_request: Request) -> Response:
        response = twilio_error(429, 20429, "Too Many Requests")
        response.headers["Retry-After"] = "3"
        return response

    httpserver.expect_request(PATH).respond_with_handler(by_number({FIRST: limited}))
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)
    (failed,) = result.failed
    assert failed.recipient == FIRST
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 3.0
    assert failed.reason == "rate limited by the service; it asks to wait 3s"
    assert failed.reply == "429 Too Many Requests (error 20429)"


async def test_500_is_transient(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_data("upstream error", status=503)
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)
    assert [(r.recipient, r.kind) for r in result.failed] == [
        (FIRST, FailureKind.TRANSIENT),
        (SECOND, FailureKind.TRANSIENT),
    ]
    assert result.failed[0].reason == "the service failed (503 SERVICE UNAVAILABLE)"


async def test_401_is_permanent_and_parks_the_channel(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _r: twilio_error(401, 20003, f"Authenticate {TOKEN}")
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)
        report = await notifier.test("sms")
    for failed in result.failed:
        assert failed.kind is FailureKind.PERMANENT
        assert failed.parks_channel is True
        assert failed.reason == "Twilio refused the message: Authenticate ******** (error 20003)"
        assert failed.hint == (
            "check account_sid and auth_token (Twilio Console, Account Info); the token may "
            "have been rotated"
        )
    assert len(result.failed) == 2
    for text in (repr(result), repr(report), caplog.text, repr(notifier.config)):
        assert TOKEN not in text


async def test_echoed_basic_credentials_are_masked(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """A proxy or API that quotes the Authorization header it got."""
    basic = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _r: twilio_error(401, 20003, f"Authorization: Basic {basic} refused")
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.reason == (
        "Twilio refused the message: Authorization: Basic ******** refused (error 20003)"
    )
    assert basic not in repr(failed)
    assert basic.rstrip("=") not in repr(failed)


async def test_a_bad_sender_parks_the_channel(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _r: twilio_error(
            400, 21659, "'From' +15017122661 is not a Twilio phone number or Short Code"
        )
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.parks_channel is True
    assert failed.hint == "check from: it must be a Twilio number of this account that can send SMS"


async def test_an_unknown_code_points_to_twilios_page(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _r: twilio_error(400, 30999, "Something new")
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.hint == "see https://www.twilio.com/docs/errors/30999"


async def test_404_names_the_account_not_a_webhook(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _r: twilio_error(404, 20404, "The requested resource was not found")
    )
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert (failed.kind, failed.reason, failed.hint) == (
        FailureKind.PERMANENT,
        "Twilio refused the message: The requested resource was not found (error 20404)",
        "check account_sid (AC..., from the Twilio Console) and api_url",
    )


async def test_404_without_twilios_answer_names_api_url(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_data("<h1>Not Found</h1>", status=404)
    async with make_notifier(base_url(httpserver), to=FIRST) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert (failed.kind, failed.reason, failed.hint) == (
        FailureKind.PERMANENT,
        "Twilio knows no such account, or api_url is not Twilio's API",
        "check account_sid (AC..., from the Twilio Console) and api_url",
    )


async def test_a_closed_port_is_transient_for_every_number(
    closed_port: int, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}") as notifier:
        result = await notifier.notify(failure_event)
    assert [(r.recipient, r.kind, r.reason) for r in result.failed] == [
        (n, FailureKind.TRANSIENT, f"connection refused by 127.0.0.1:{closed_port}")
        for n in (FIRST, SECOND)
    ]


async def test_send_hook_directly(httpserver: HTTPServer, failure_event: Event) -> None:
    httpserver.expect_request(PATH).respond_with_handler(created)
    plugin = default_registry().get("twilio-sms")
    assert plugin is not None
    options: dict[str, Any] = {
        "api_url": base_url(httpserver),
        "account_sid": SID,
        "auth_token": TOKEN,
        "from": "+15017122661",
        "to": FIRST,
    }
    config = plugin.validate_config(options)
    results = await plugin.send(config, to_notification(failure_event), Renderer(), None, None)
    assert [(r.recipient, r.status) for r in results] == [(FIRST, Status.DELIVERED)]
