"""Uptime Kuma pushes against a real local HTTP server: the status, message and ping each
event sends, skips, and what each answer means."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Event, FailureKind, Notifier, Status
from dbnotify.channel import Field, Notification, Renderer, Severity
from dbnotify.events import to_notification
from dbnotify.plugins import default_registry
from dbnotify_uptime_kuma.plugin import MSG_LIMIT, duration_ms, summary
from dbnotify_uptime_kuma.settings import UptimeKumaConfig

from .conftest import TOKEN, WHEN

MakeNotifier = Callable[..., Notifier]
MONITOR_GONE = '{"ok":false,"msg":"Monitor not found or not active."}'
"""What Uptime Kuma (express) answers for an unknown or paused monitor, with 404."""


def push_url(server: HTTPServer) -> str:
    return server.url_for(f"/api/push/{TOKEN}") + "?status=up&msg=OK&ping="


def host_of(server: HTTPServer) -> str:
    return f"http://{server.host}:{server.port}"


def ok(server: HTTPServer) -> None:
    server.expect_request(f"/api/push/{TOKEN}", method="GET").respond_with_json({"ok": True})


async def test_a_failure_pushes_down_with_the_summary(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    ok(httpserver)
    async with make_notifier(push_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)

    assert result.ok, result
    (channel,) = result.channels
    assert channel.channel_type == "uptime-kuma"
    (delivered,) = channel.recipients
    assert delivered.status is Status.DELIVERED
    assert delivered.recipient == host_of(httpserver)
    assert delivered.reply == "200 OK"

    ((request, _response),) = httpserver.log
    assert request.method == "GET"
    assert request.path == f"/api/push/{TOKEN}"
    assert request.args.to_dict() == {
        "status": "down",
        "msg": "[DBackup] Backup Failed: nightly-pg - Backup job 'nightly-pg' failed. "
        "Error: disk full",
        "ping": "",
    }


async def test_a_success_pushes_up_with_the_duration_as_ping(
    httpserver: HTTPServer, make_notifier: MakeNotifier, success_event: Event
) -> None:
    ok(httpserver)
    async with make_notifier(push_url(httpserver)) as notifier:
        assert (await notifier.notify(success_event)).ok
    assert httpserver.log[0][0].args.to_dict() == {
        "status": "up",
        "msg": "[DBackup] Backup Successful: nightly-pg - Backup job 'nightly-pg' completed "
        "successfully.",
        "ping": "83000",
    }


async def test_the_duration_can_stay_out(
    httpserver: HTTPServer, make_notifier: MakeNotifier, success_event: Event
) -> None:
    ok(httpserver)
    async with make_notifier(push_url(httpserver), duration_as_ping=False) as notifier:
        assert (await notifier.notify(success_event)).ok
    assert httpserver.log[0][0].args["ping"] == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("850 ms", 850),
        ("1s", 1000),
        ("1m 23s", 83_000),
        ("2h 5m", 7_500_000),
        ("1d 1s", 86_401_000),
        ("about a minute", None),
        ("12", None),
        ("1m 23s and change", None),
    ],
)
def test_the_duration_field_in_milliseconds(value: str, expected: int | None) -> None:
    notification = Notification(
        id="x",
        event_type="backup_success",
        severity=Severity.SUCCESS,
        title="t",
        message="m",
        fields=(Field("Job", "j"), Field("Duration", value)),
        timestamp=WHEN,
    )
    assert duration_ms(notification) == expected


def test_the_summary_is_one_line_and_capped() -> None:
    event = Event("backup_failure", {"job_name": "j", "error": "a\nb\tc " + "x" * 500})
    text = summary(to_notification(event), Renderer())
    assert "\n" not in text
    assert text.startswith("[DBackup] Backup Failed: j - Backup job 'j' failed. Error: a b c x")
    assert len(text) == MSG_LIMIT
    assert text.endswith("…")


async def test_the_renderer_writes_the_subject(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    ok(httpserver)
    rendering = {"subject_prefix": "[Prod]"}
    async with make_notifier(push_url(httpserver), rendering=rendering) as notifier:
        assert (await notifier.notify(failure_event)).ok
    assert httpserver.log[0][0].args["msg"].startswith("[Prod] Backup Failed: nightly-pg - ")


async def test_other_events_are_skipped_with_the_reason(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    restore = Event("restore_failure", {"error": "no space"}, timestamp=WHEN)
    async with make_notifier(push_url(httpserver)) as notifier:
        result = await notifier.notify(restore)
    assert result.ok
    (skipped,) = result.recipients
    assert skipped.status is Status.SKIPPED
    assert skipped.reason == (
        "restore_failure is not one of this heartbeat's signals (backup_success (up), "
        "backup_failure (down)); add it to signals to push for it"
    )
    assert len(httpserver.log) == 0


async def test_a_restore_can_be_pushed(httpserver: HTTPServer, make_notifier: MakeNotifier) -> None:
    ok(httpserver)
    restore = Event("restore_failure", {"error": "no space"}, timestamp=WHEN)
    async with make_notifier(push_url(httpserver), signals={"restore_failure": "down"}) as n:
        assert (await n.notify(restore)).ok
    assert httpserver.log[0][0].args["status"] == "down"


async def test_404_says_the_monitor_does_not_exist(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(f"/api/push/{TOKEN}").respond_with_data(
        MONITOR_GONE, status=404, content_type="application/json"
    )
    async with make_notifier(push_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is False
    assert failed.reason == "the monitor does not exist or is paused: check the URL"
    assert failed.hint is not None
    assert failed.hint.startswith("copy the Push URL from the monitor's page in Uptime Kuma")
    assert failed.reply == f"404 NOT FOUND: {MONITOR_GONE}"


async def test_another_error_behind_404_is_transient(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """Uptime Kuma answers every error of the push route with 404."""
    httpserver.expect_request(f"/api/push/{TOKEN}").respond_with_json(
        {"ok": False, "msg": "SQLITE_BUSY: database is locked"}, status=404
    )
    async with make_notifier(push_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == (
        "Uptime Kuma could not record the beat: SQLITE_BUSY: database is locked"
    )
    assert failed.hint == "Uptime Kuma failed on its side (see its log); the outbox retries"


async def test_429_is_transient_with_retry_after(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(f"/api/push/{TOKEN}").respond_with_data(
        "Too many requests", status=429, headers={"Retry-After": "60"}
    )
    async with make_notifier(push_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 60.0
    assert failed.reason == "rate limited by the service; it asks to wait 60s"


async def test_a_closed_port_is_transient(
    closed_port: int, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}/api/push/{TOKEN}") as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.recipient == f"http://127.0.0.1:{closed_port}"
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_a_short_token_never_appears_in_results_or_logs(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Uptime Kuma 1.x made 10-character tokens: too short for the generic masking."""
    caplog.set_level(logging.DEBUG)
    short = "Ab3dE6gH9k"
    httpserver.expect_request(f"/api/push/{short}").respond_with_data(
        f"bad token {short}", status=400
    )
    url = httpserver.url_for(f"/api/push/{short}")
    async with make_notifier(url) as notifier:
        result = await notifier.notify(failure_event)
        report = await notifier.test("kuma")
    (failed,) = result.failed
    assert failed.reply == "400 BAD REQUEST: bad token ********"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    for text in (repr(result), repr(report), ours, repr(notifier.config)):
        assert short not in text


async def test_test_without_sending_sends_nothing(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    async with make_notifier(push_url(httpserver)) as notifier:
        report = await notifier.test("kuma", send_message=False)
    assert report.ok
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        (
            "config",
            True,
            f"push monitor at {host_of(httpserver)}; signals: backup_success -> up, "
            "backup_failure -> down; no request sent",
        )
    ]
    assert len(httpserver.log) == 0


async def test_test_pushes_an_up_beat(httpserver: HTTPServer, make_notifier: MakeNotifier) -> None:
    ok(httpserver)
    async with make_notifier(push_url(httpserver)) as notifier:
        report = await notifier.test("kuma")
    assert report.ok, report
    config, request = report.stages
    assert config.detail.endswith("; the test pushes an up beat")
    assert (request.name, request.ok, request.detail) == ("request", True, "delivered: 200 OK")
    args = httpserver.log[0][0].args
    assert args["status"] == "up"
    assert args["msg"].startswith("[DBackup] Test Notification - This is a test notification.")


async def test_test_of_a_paused_monitor_fails_the_request_stage(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request(f"/api/push/{TOKEN}").respond_with_data(
        MONITOR_GONE, status=404, content_type="application/json"
    )
    async with make_notifier(push_url(httpserver)) as notifier:
        report = await notifier.test("kuma")
    assert not report.ok
    assert report.stages[1].detail.startswith(
        "the monitor does not exist or is paused: check the URL (reply: 404 NOT FOUND: "
    )


async def test_send_hook_directly(httpserver: HTTPServer, failure_event: Event) -> None:
    ok(httpserver)
    plugin = default_registry().get("uptime-kuma")
    assert plugin is not None
    config = plugin.validate_config({"push_url": push_url(httpserver)})
    assert isinstance(config, UptimeKumaConfig)
    notification = to_notification(failure_event)
    results = await plugin.send(config, notification, Renderer(), None, None)
    assert [r.status for r in results] == [Status.DELIVERED]
    users = await plugin.send(config, notification, Renderer(), ("a@example.com",), None)
    assert [(r.status, r.reason) for r in users] == [
        (Status.SKIPPED, "an Uptime Kuma monitor cannot deliver to a person")
    ]


def test_the_timestamp_is_not_in_the_summary() -> None:
    """The monitor's event list has its own time column."""
    event = Event(
        "backup_success", {"job_name": "j"}, timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    assert "2026" not in summary(to_notification(event), Renderer())
