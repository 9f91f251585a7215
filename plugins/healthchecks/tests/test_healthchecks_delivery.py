"""Healthchecks pings against a real local HTTP server: which URL each event pings, the
log in the body, the run id, skips, and what each answer means."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from dbnotify import Event, FailureKind, Notifier, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify.plugins import default_registry
from dbnotify_healthchecks.plugin import RUN_IDS, fit
from dbnotify_healthchecks.settings import HealthchecksConfig

from .conftest import CHECK, WHEN

FAILURE_TEXT = (
    "Backup Failed\n=============\n\nBackup job 'nightly-pg' failed. Error: disk full\n\n"
    "Job:   nightly-pg\nError: disk full\n\n--\n2026-11-24 05:00:00 UTC · Sent by DBackup\n"
)
NIGHTLY_RID = str(uuid.uuid5(RUN_IDS, "nightly-pg"))

MakeNotifier = Callable[..., Notifier]


def ping_url(server: HTTPServer) -> str:
    return server.url_for(f"/ping/{CHECK}")


def host_of(server: HTTPServer) -> str:
    return f"http://{server.host}:{server.port}"


def ok(server: HTTPServer, suffix: str = "") -> None:
    server.expect_request(f"/ping/{CHECK}{suffix}", method="POST").respond_with_data("OK")


async def test_a_failure_pings_fail_with_the_log(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    ok(httpserver, "/fail")
    async with make_notifier(ping_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)

    assert result.ok, result
    (channel,) = result.channels
    assert channel.channel_type == "healthchecks"
    (delivered,) = channel.recipients
    assert delivered.status is Status.DELIVERED
    assert delivered.recipient == host_of(httpserver)
    assert delivered.reply == "200 OK"

    ((request, _response),) = httpserver.log
    assert request.method == "POST"
    assert request.path == f"/ping/{CHECK}/fail"
    assert request.args.to_dict() == {"rid": NIGHTLY_RID}
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert request.get_data(as_text=True) == FAILURE_TEXT


async def test_a_success_pings_the_url_itself(
    httpserver: HTTPServer, make_notifier: MakeNotifier, success_event: Event
) -> None:
    ok(httpserver)
    async with make_notifier(ping_url(httpserver)) as notifier:
        assert (await notifier.notify(success_event)).ok
    request = httpserver.log[0][0]
    assert request.path == f"/ping/{CHECK}"
    assert request.args["rid"] == NIGHTLY_RID
    assert "Duration: 1m 23s" in request.get_data(as_text=True)


async def test_a_start_and_its_finish_share_the_run_id(
    httpserver: HTTPServer, make_notifier: MakeNotifier, success_event: Event
) -> None:
    ok(httpserver, "/start")
    ok(httpserver)
    started = Event(
        "backup_started",
        {"job_name": "nightly-pg"},
        title="Backup Started",
        message="Backup job 'nightly-pg' started.",
        timestamp=WHEN,
    )
    other = Event("backup_success", {"job_name": "weekly-files"}, timestamp=WHEN)
    async with make_notifier(ping_url(httpserver)) as notifier:
        for event in (started, success_event, other):
            assert (await notifier.notify(event)).ok
    (start, _), (finish, _), (weekly, _) = httpserver.log
    assert start.path.endswith("/start")
    assert start.args["rid"] == finish.args["rid"] == NIGHTLY_RID
    assert weekly.args["rid"] == str(uuid.uuid5(RUN_IDS, "weekly-files")) != NIGHTLY_RID
    assert uuid.UUID(NIGHTLY_RID).version == 5


async def test_without_run_id_or_job_no_rid_is_sent(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    ok(httpserver, "/fail")
    system = Event("system_error", {"component": "scheduler", "error": "stuck"}, timestamp=WHEN)
    async with make_notifier(ping_url(httpserver), run_id=False) as notifier:
        assert (await notifier.notify(failure_event)).ok
    async with make_notifier(ping_url(httpserver), signals={"system_error": "fail"}) as notifier:
        assert (await notifier.notify(system)).ok
    assert [request.query_string for request, _ in httpserver.log] == [b"", b""]


async def test_the_user_query_is_kept(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """The slug form with auto-provisioning: ``<ping-key>/<slug>?create=1``."""
    httpserver.expect_request("/fqOOd6-F4MMNuCEnzTU01w/nightly/fail").respond_with_data(
        "Created", status=201
    )
    url = httpserver.url_for("/fqOOd6-F4MMNuCEnzTU01w/nightly") + "?create=1"
    async with make_notifier(url) as notifier:
        result = await notifier.notify(failure_event)
    assert result.ok
    assert result.recipients[0].reply == "201 CREATED"
    assert httpserver.log[0][0].args.to_dict() == {"create": "1", "rid": NIGHTLY_RID}


async def test_other_events_are_skipped_with_the_reason(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    restore = Event("restore_complete", {"source_name": "pg"}, timestamp=WHEN)
    async with make_notifier(ping_url(httpserver)) as notifier:
        result = await notifier.notify(restore)
    assert result.ok
    (skipped,) = result.recipients
    assert skipped.status is Status.SKIPPED
    assert skipped.reason == (
        "restore_complete is not one of this heartbeat's signals (backup_started (start), "
        "backup_success (success), backup_failure (fail)); add it to signals to ping for it"
    )
    assert len(httpserver.log) == 0


async def test_an_empty_table_pings_for_nothing(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    async with make_notifier(ping_url(httpserver), signals={}) as notifier:
        (skipped,) = (await notifier.notify(failure_event)).recipients
    assert skipped.status is Status.SKIPPED
    assert skipped.reason == "this heartbeat pings for no event (signals is empty)"


async def test_a_restore_can_be_logged(httpserver: HTTPServer, make_notifier: MakeNotifier) -> None:
    ok(httpserver, "/log")
    restore = Event("restore_failure", {"error": "no space"}, timestamp=WHEN)
    async with make_notifier(ping_url(httpserver), signals={"restore_failure": "log"}) as n:
        assert (await n.notify(restore)).ok
    assert httpserver.log[0][0].path == f"/ping/{CHECK}/log"


def test_the_log_is_cut_to_the_limit_on_a_character() -> None:
    assert fit("abc", 3) == b"abc"
    assert fit("x" * 200, 100) == b"x" * 96 + "\n…".encode()
    cut = fit("é" * 100, 51)
    assert len(cut) <= 51
    assert cut.decode().endswith("\n…")
    assert fit("abc", 0) == b""


async def test_a_long_log_is_cut_to_body_limit(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    ok(httpserver, "/fail")
    long = Event("backup_failure", {"job_name": "j", "error": "x" * 5000}, timestamp=WHEN)
    async with make_notifier(ping_url(httpserver), body_limit=1000) as notifier:
        assert (await notifier.notify(long)).ok
    body = httpserver.log[0][0].get_data()
    assert len(body) == 1000
    assert body.decode().endswith("\n…")


async def test_what_a_server_kept_of_the_log_is_said(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request(f"/ping/{CHECK}/fail").respond_with_response(
        Response("OK", headers={"Ping-Body-Limit": "100"})
    )
    async with make_notifier(ping_url(httpserver)) as notifier:
        result = await notifier.notify(
            Event("backup_failure", {"job_name": "j", "error": "e" * 300}, timestamp=WHEN)
        )
    sent = len(httpserver.log[0][0].get_data())
    assert result.recipients[0].reply == (
        f"200 OK; Healthchecks kept the first 100 of the log's {sent} bytes"
    )


async def test_404_says_the_check_does_not_exist(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(f"/ping/{CHECK}/fail").respond_with_data("not found", status=404)
    async with make_notifier(ping_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is False
    assert failed.reason == "the check does not exist: check the URL"
    assert failed.hint == (
        "copy the ping URL from the check's page in Healthchecks (a deleted check's URL is "
        "gone for good); a slug URL needs the project's ping key and the check's slug"
    )
    assert failed.reply == "404 NOT FOUND: not found"


async def test_409_says_the_slug_is_ambiguous(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/key0123456789abcdefghi/db/fail").respond_with_data(
        "ambiguous slug", status=409
    )
    async with make_notifier(httpserver.url_for("/key0123456789abcdefghi/db")) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.reason == "the slug names more than one check in the project"
    assert failed.hint == "give the checks different slugs, or use the check's UUID ping URL"


async def test_429_is_transient_with_retry_after(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(f"/ping/{CHECK}/fail").respond_with_data(
        "rate limited", status=429, headers={"Retry-After": "30"}
    )
    async with make_notifier(ping_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 30.0
    assert failed.reason == "rate limited by the service; it asks to wait 30s"


async def test_a_closed_port_is_transient(
    closed_port: int, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}/ping/{CHECK}") as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.recipient == f"http://127.0.0.1:{closed_port}"
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == f"connection refused by 127.0.0.1:{closed_port}"
    assert failed.hint is not None
    assert failed.hint.startswith("nothing accepts connections there")


async def test_the_check_never_appears_in_results_or_logs(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # a proxy that echoes the path, and the UUID alone
    httpserver.expect_request(f"/ping/{CHECK}/fail").respond_with_data(
        f"no route /ping/{CHECK}/fail for check {CHECK}", status=400
    )
    async with make_notifier(ping_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)
        report = await notifier.test("hc")
    (failed,) = result.failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.reply == "400 BAD REQUEST: no route ******** for check ********"
    # the local server's own log (werkzeug) sees every path: it is the service's side
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    for text in (repr(result), repr(report), ours, repr(notifier.config)):
        assert CHECK not in text


async def test_test_without_sending_sends_nothing(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    async with make_notifier(ping_url(httpserver)) as notifier:
        report = await notifier.test("hc", send_message=False)
    assert report.ok
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        (
            "config",
            True,
            f"check at {host_of(httpserver)}; signals: backup_started -> start, "
            "backup_success -> success, backup_failure -> fail; no request sent",
        )
    ]
    assert len(httpserver.log) == 0


async def test_test_pings_log_and_leaves_the_state(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    ok(httpserver, "/log")
    async with make_notifier(ping_url(httpserver)) as notifier:
        report = await notifier.test("hc")
    assert report.ok, report
    config, request = report.stages
    assert config.detail.endswith("; the test pings /log (the check's state stays as it is)")
    assert (request.name, request.ok, request.detail) == ("request", True, "delivered: 200 OK")
    (sent, _) = httpserver.log[0]
    assert sent.path == f"/ping/{CHECK}/log"
    assert "If you can read it, the channel works." in sent.get_data(as_text=True)


async def test_test_of_a_deleted_check_fails_the_request_stage(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request(f"/ping/{CHECK}/log").respond_with_data("not found", status=404)
    async with make_notifier(ping_url(httpserver)) as notifier:
        report = await notifier.test("hc")
    assert not report.ok
    request = report.stages[1]
    assert request.detail == (
        "the check does not exist: check the URL (reply: 404 NOT FOUND: not found)"
    )


async def test_send_hook_directly(httpserver: HTTPServer, failure_event: Event) -> None:
    ok(httpserver, "/fail")
    plugin = default_registry().get("healthchecks")
    assert plugin is not None
    config = plugin.validate_config({"ping_url": ping_url(httpserver)})
    assert isinstance(config, HealthchecksConfig)
    results = await plugin.send(config, to_notification(failure_event), Renderer(), None, None)
    assert [r.status for r in results] == [Status.DELIVERED]
    users = await plugin.send(
        config, to_notification(failure_event), Renderer(), ("a@example.com",), None
    )
    assert [(r.status, r.reason) for r in users] == [
        (Status.SKIPPED, "a Healthchecks check cannot deliver to a person")
    ]
