"""ntfy delivery against a real local HTTP server: what ntfy receives, and what each
answer means."""

from __future__ import annotations

import base64
import email.header
import logging
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Event, FailureKind, Notifier, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify.plugins import default_registry
from dbnotify_ntfy.plugin import fit, header_text
from dbnotify_ntfy.settings import NtfyConfig

TOKEN = "tk_AgHUrLbS2dw4N9mMbQz4vGhEb5xKp"
FAILURE_TEXT = (
    "Backup Failed\n=============\n\nBackup job 'nightly-pg' failed. Error: disk full\n\n"
    "Job:   nightly-pg\nError: disk full\n\n--\n2026-11-24 05:00:00 UTC · Sent by DBackup\n"
)

MakeNotifier = Callable[..., Notifier]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def decoded(value: str) -> str:
    """What ntfy makes of a header value (it decodes RFC 2047 encoded words)."""
    return str(email.header.make_header(email.header.decode_header(value)))


async def test_what_ntfy_receives(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_oneshot_request("/dbackup-alerts", method="POST").respond_with_json(
        {"id": "sPs71M8A2T", "time": 1700000000, "event": "message", "topic": "dbackup-alerts"}
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)

    assert result.ok, result
    (delivered,) = result.recipients
    assert delivered.recipient == "dbackup-alerts"
    assert delivered.status is Status.DELIVERED
    assert delivered.reply == "200 OK"

    ((request, _response),) = httpserver.log
    assert request.method == "POST"
    assert request.path == "/dbackup-alerts"
    assert request.get_data() == FAILURE_TEXT.encode()
    assert request.headers["Title"] == "[DBackup] Backup Failed: nightly-pg"
    assert request.headers["X-Priority"] == "5"
    assert request.headers["Tags"] == "rotating_light,backup_failure"
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Authorization" not in request.headers
    assert "Priority" not in request.headers


@pytest.mark.parametrize(
    ("event", "tags", "priority"),
    [
        (
            Event("backup_success", {"job_name": "nightly-pg"}),
            "white_check_mark,backup_success",
            "3",
        ),
        (Event("test"), "information_source,test", "3"),
        (
            Event("disk_low", title="Disk space low", severity="warning", message="92% used"),
            "warning,disk_low",
            "3",
        ),
        (Event("system_error", {"component": "scheduler", "error": "boom"}), None, "5"),
    ],
)
async def test_tags_and_priority_follow_the_severity(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    event: Event,
    tags: str | None,
    priority: str,
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_json({"id": "x"})
    async with make_notifier(base_url(httpserver)) as notifier:
        assert (await notifier.notify(event)).ok
    request = httpserver.log[0][0]
    assert request.headers["X-Priority"] == priority
    assert request.headers["Tags"] == (tags or "rotating_light,system_error")


async def test_configured_priorities(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    success_event: Event,
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_json({"id": "x"})
    async with make_notifier(base_url(httpserver), priority=2, failure_priority=4) as notifier:
        assert (await notifier.notify(success_event)).ok
        assert (await notifier.notify(failure_event)).ok
    assert [r.headers["X-Priority"] for r, _ in httpserver.log] == ["2", "4"]


async def test_access_token_is_a_bearer_header(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(
        "/dbackup-alerts", headers={"Authorization": f"Bearer {TOKEN}"}
    ).respond_with_json({"id": "x"})
    async with make_notifier(base_url(httpserver), access_token=TOKEN) as notifier:
        assert (await notifier.notify(failure_event)).ok
    assert httpserver.log[0][0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert httpserver.log[0][0].query_string == b""


async def test_a_non_ascii_title_is_one_rfc2047_word(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_json({"id": "x"})
    event = Event("backup_failure", {"job_name": "Sicherung-München 🗄", "error": "Platte voll"})
    async with make_notifier(base_url(httpserver)) as notifier:
        assert (await notifier.notify(event)).ok
    request = httpserver.log[0][0]
    title = request.headers["Title"]
    expected = "[DBackup] Backup Failed: Sicherung-München 🗄"
    assert title == "=?UTF-8?B?" + base64.b64encode(expected.encode()).decode() + "?="
    assert title.isascii()
    assert decoded(title) == expected
    assert "Job:   Sicherung-München 🗄" in request.get_data().decode()


def test_header_text() -> None:
    assert header_text("plain ASCII") == "plain ASCII"
    # ASCII that ntfy would decode is encoded, so that it is shown as written
    assert decoded(header_text("=?UTF-8?B?SGk=?=")) == "=?UTF-8?B?SGk=?="
    assert decoded(header_text("Grüße")) == "Grüße"


async def test_a_long_body_is_cut_to_ntfys_message_limit(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_json({"id": "x"})
    event = Event("backup_failure", {"job_name": "nightly-pg", "error": "ü" * 5000})
    async with make_notifier(base_url(httpserver)) as notifier:
        assert (await notifier.notify(event)).ok
    body = httpserver.log[0][0].get_data()
    assert len(body) <= 4096
    assert len(body) >= 4094
    text = body.decode()  # never cut inside a character
    assert text.endswith("ü…")


def test_fit() -> None:
    assert fit("short") == "short"
    assert fit("x" * 4096) == "x" * 4096
    assert fit("x" * 4097) == "x" * 4093 + "…"
    assert fit("€" * 10, limit=10) == "€€…"


async def test_the_renderer_writes_the_text(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_json({"id": "x"})
    async with make_notifier(
        base_url(httpserver), rendering={"subject_prefix": "[Prod]", "app_name": "Vault"}
    ) as notifier:
        assert (await notifier.notify(failure_event)).ok
    request = httpserver.log[0][0]
    assert request.headers["Title"] == "[Prod] Backup Failed: nightly-pg"
    assert request.get_data().decode().endswith("· Sent by Vault\n")


async def test_429_is_transient_with_retry_after(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_data(
        '{"code":42901,"http":429,"error":"limit reached: too many requests"}',
        status=429,
        headers={"Retry-After": "30"},
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 30.0
    assert failed.reply == (
        '429 TOO MANY REQUESTS: {"code":42901,"http":429,"error":"limit reached: too many '
        'requests"}'
    )


async def test_500_is_transient(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_data("oops", status=502)
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == "the service failed (502 BAD GATEWAY)"
    assert not failed.parks_channel


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_token_is_permanent_and_parks_the_channel(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/dbackup-alerts").respond_with_data(
        f'{{"code":{status}01,"http":{status},"error":"unauthorized {TOKEN}"}}', status=status
    )
    async with make_notifier(base_url(httpserver), access_token=TOKEN) as notifier:
        result = await notifier.notify(failure_event)
    (failed,) = result.failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is True
    assert failed.reason == "the service refused the credentials"
    assert failed.reply is not None
    assert failed.reply.endswith('"error":"unauthorized ********"}')
    assert failed.hint == (
        "check access_token: it must belong to a user allowed to write to this topic"
    )
    assert TOKEN not in repr(result)
    assert TOKEN not in caplog.text


async def test_a_protected_topic_without_a_token(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_data(
        '{"code":40301,"http":403,"error":"forbidden"}', status=403
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.parks_channel
    assert failed.hint == (
        "this topic needs an access token: set access_token to the token of a user allowed "
        "to write to it"
    )


async def test_404_names_server_url_not_a_webhook(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/wrong/dbackup-alerts").respond_with_data(
        "404 page not found", status=404
    )
    async with make_notifier(base_url(httpserver) + "/wrong") as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert (failed.kind, failed.reason, failed.hint) == (
        FailureKind.PERMANENT,
        "no ntfy server at this address (wrong server_url)",
        "set server_url to the ntfy server's base URL (e.g. https://ntfy.sh), with its path "
        "prefix if it has one",
    )


async def test_a_closed_port_is_transient(
    closed_port: int, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}", access_token=TOKEN) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.recipient == "dbackup-alerts"
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_send_hook_directly(httpserver: HTTPServer, failure_event: Event) -> None:
    httpserver.expect_request("/dbackup-alerts").respond_with_json({"id": "x"})
    plugin = default_registry().get("ntfy")
    assert plugin is not None
    options: dict[str, Any] = {"server_url": base_url(httpserver), "topic": "dbackup-alerts"}
    config = plugin.validate_config(options)
    assert isinstance(config, NtfyConfig)
    results = await plugin.send(config, to_notification(failure_event), Renderer(), None, None)
    assert [r.status for r in results] == [Status.DELIVERED]
