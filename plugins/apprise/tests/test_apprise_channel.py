"""Delivery through Apprise to a real HTTP server: what Apprise posts, and its results."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dbnotify import Event, FailureKind, Severity, Status
from dbnotify.events import to_notification
from dbnotify.results import Delivery, Target

EVENT = Event(
    "backup_failure", {"job_name": "nightly-pg", "error": "disk full", "database": "orders"}
)


async def test_delivers_subject_and_text_as_apprise_json(
    json_url: Any, posted: Any, make_notifier: Any
) -> None:
    async with make_notifier([json_url()]) as notifier:
        result = await notifier.notify(EVENT)

    assert result.ok, result
    (recipient,) = result.recipients
    assert recipient.recipient == "apprise://json"
    assert recipient.status is Status.DELIVERED
    assert recipient.reply == "sent by Apprise (JSON)"
    (body,) = posted()
    assert body["title"] == "[DBackup] Backup Failed: nightly-pg"
    assert body["type"] == "failure"
    assert body["message"].strip() == notifier.renderer.text(to_notification(EVENT)).strip()
    assert "disk full" in body["message"]


@pytest.mark.parametrize("severity", list(Severity))
async def test_severity_is_apprise_notify_type(
    severity: Severity, json_url: Any, posted: Any, make_notifier: Any
) -> None:
    event = Event("custom", title="Custom", message="hello", severity=severity)
    async with make_notifier([json_url()]) as notifier:
        assert (await notifier.notify(event)).ok
    assert posted()[0]["type"] == severity.value


async def test_each_url_is_a_recipient_labelled_by_scheme(
    json_url: Any, posted: Any, make_notifier: Any
) -> None:
    urls = [json_url("/one"), json_url("/two"), json_url("/three", status=500)]
    async with make_notifier(urls) as notifier:
        result = await notifier.notify(EVENT)

    assert [(r.recipient, r.status) for r in result.recipients] == [
        ("apprise://json", Status.DELIVERED),
        ("apprise://json#2", Status.DELIVERED),
        ("apprise://json#3", Status.FAILED),
    ]
    assert len(posted()) == 3


async def test_retry_only_sends_to_the_named_urls(
    json_url: Any, httpserver: Any, make_notifier: Any
) -> None:
    async with make_notifier([json_url("/one"), json_url("/two")]) as notifier:
        channel = await notifier.deliverer.deliver(
            Delivery("alerts", Target.CHANNEL),
            to_notification(EVENT),
            retry_only=("apprise://json#2", "apprise://gone"),
        )

    assert [(r.recipient, r.status) for r in channel.recipients] == [
        ("apprise://json#2", Status.DELIVERED),
        ("apprise://gone", Status.SKIPPED),
    ]
    ((request, _response),) = httpserver.log
    assert request.path.startswith("/two/")


async def test_server_error_is_transient_with_apprise_s_log(
    json_url: Any, make_notifier: Any, url_secrets: Any
) -> None:
    async with make_notifier([json_url(status=503)]) as notifier:
        (failed,) = (await notifier.notify(EVENT)).failed

    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == (
        "Apprise reported the service failed; its log says why: "
        "Failed to send JSON POST notification: Servers are overloaded., error=503."
    )
    assert failed.reply == "HTTP 503"
    assert not failed.parks_channel


async def test_refused_credentials_are_permanent_and_park_the_channel(
    json_url: Any, make_notifier: Any
) -> None:
    async with make_notifier([json_url(status=401)]) as notifier:
        (failed,) = (await notifier.notify(EVENT)).failed

    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel
    assert failed.reply == "HTTP 401"
    assert failed.hint == "the service refused the credentials in this Apprise URL; check them"


async def test_not_found_is_permanent(json_url: Any, make_notifier: Any) -> None:
    async with make_notifier([json_url(status=404)]) as notifier:
        (failed,) = (await notifier.notify(EVENT)).failed

    assert failed.kind is FailureKind.PERMANENT
    assert not failed.parks_channel


async def test_unreachable_is_transient(closed_port: int, make_notifier: Any) -> None:
    async with make_notifier([f"json://127.0.0.1:{closed_port}/hook"]) as notifier:
        (failed,) = (await notifier.notify(EVENT)).failed

    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == (
        "Apprise reported the service failed; its log says why: "
        "A Connection error occurred sending JSON notification to 127.0.0.1."
    )


async def test_secrets_are_masked_in_apprise_and_urllib3_debug_logs(
    json_url: Any, make_notifier: Any, url_secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_notifier([json_url()]) as notifier:
        assert (await notifier.notify(EVENT)).ok

    ours = [r for r in caplog.records if r.name.split(".")[0] in ("apprise", "urllib3")]
    assert any("********" in r.getMessage() for r in ours)
    for record in ours:
        for secret in url_secrets:
            assert secret not in record.getMessage(), record.getMessage()


async def test_test_loads_every_url_then_sends(
    json_url: Any, posted: Any, make_notifier: Any
) -> None:
    async with make_notifier([json_url()]) as notifier:
        report = await notifier.test("alerts")

    assert report.ok, report
    assert [(s.name, s.ok) for s in report.stages] == [("load", True), ("send", True)]
    assert report.stages[0].detail == "Apprise understands apprise://json (JSON)"
    assert report.stages[1].detail == "test notification to apprise://json"
    assert posted()[0]["title"] == "[DBackup] Test Notification"


async def test_test_without_sending_only_loads(
    json_url: Any, posted: Any, make_notifier: Any
) -> None:
    async with make_notifier([json_url()]) as notifier:
        report = await notifier.test("alerts", send_message=False)

    assert report.ok
    assert [s.name for s in report.stages] == ["load"]
    assert posted() == []


async def test_test_of_a_failing_service_fails_the_send_stage(
    json_url: Any, make_notifier: Any
) -> None:
    async with make_notifier([json_url(status=403)]) as notifier:
        report = await notifier.test("alerts")

    assert not report.ok
    load, send = report.stages
    assert load.ok
    assert not send.ok
    assert send.detail == (
        "apprise://json: Apprise reported the service failed; its log says why: "
        "Failed to send JSON POST notification: error=403."
    )
    assert send.hint == "the service refused the credentials in this Apprise URL; check them"


async def test_a_short_password_echoed_by_the_service_is_masked(
    httpserver: Any, make_notifier: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A password is a secret however short: masked where it stands alone, in Apprise's
    own log of the answer; not inside other words."""
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        "password pw1 refused (pw1x stays)", status=401
    )
    url = f"json://dbackup:pw1@127.0.0.1:{httpserver.port}/hook"
    async with make_notifier([url]) as notifier:
        (failed,) = (await notifier.notify(EVENT)).failed

    assert failed.reply == "HTTP 401"
    details = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("apprise") and "Response Details" in r.getMessage()
    ]
    assert details == ["Response Details:\r\nb'password ******** refused (pw1x stays)'"]
