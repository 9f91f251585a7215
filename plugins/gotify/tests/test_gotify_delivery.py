"""Gotify delivery against a real local HTTP server: what Gotify receives, and what each
answer means."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Event, FailureKind, Notifier, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify.plugins import default_registry
from dbnotify_gotify.settings import GotifyConfig

TOKEN = "AgotifyAppTokenXyz"
FAILURE_TEXT = (
    "Backup Failed\n=============\n\nBackup job 'nightly-pg' failed. Error: disk full\n\n"
    "Job:   nightly-pg\nError: disk full\n\n--\n2026-11-24 05:00:00 UTC · Sent by DBackup\n"
)

MakeNotifier = Callable[..., Notifier]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def host_of(server: HTTPServer) -> str:
    return f"http://{server.host}:{server.port}"


async def test_what_gotify_receives(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_oneshot_request("/message", method="POST").respond_with_json({"id": 25})
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)

    assert result.ok, result
    (channel,) = result.channels
    assert channel.channel == "push"
    assert channel.channel_type == "gotify"
    (delivered,) = channel.recipients
    assert delivered.status is Status.DELIVERED
    assert delivered.recipient == host_of(httpserver)
    assert delivered.reply == "200 OK"

    ((request, _response),) = httpserver.log
    assert request.method == "POST"
    assert request.path == "/message"
    assert request.query_string == b""
    assert request.headers["X-Gotify-Key"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {
        "title": "[DBackup] Backup Failed: nightly-pg",
        "message": FAILURE_TEXT,
        "priority": 8,
        "extras": {"client::display": {"contentType": "text/plain"}},
    }


async def test_success_uses_the_configured_priority(
    httpserver: HTTPServer, make_notifier: MakeNotifier, success_event: Event
) -> None:
    httpserver.expect_request("/message").respond_with_json({"id": 1})
    async with make_notifier(base_url(httpserver), priority=3) as notifier:
        assert (await notifier.notify(success_event)).ok

    body = httpserver.log[0][0].get_json()
    assert body["priority"] == 3
    assert body["title"] == "[DBackup] Backup Successful: nightly-pg"
    assert "Duration: 1m 23s" in body["message"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [({}, 8), ({"failure_priority": 10}, 10), ({"priority": 9}, 9), ({"priority": 0}, 8)],
)
async def test_failure_priority_is_raised(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    options: dict[str, Any],
    expected: int,
) -> None:
    httpserver.expect_request("/message").respond_with_json({"id": 1})
    async with make_notifier(base_url(httpserver), **options) as notifier:
        assert (await notifier.notify(failure_event)).ok
    assert httpserver.log[0][0].get_json()["priority"] == expected


async def test_a_path_prefix_is_kept(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/gotify/message", method="POST").respond_with_json({"id": 1})
    async with make_notifier(base_url(httpserver) + "/gotify/") as notifier:
        assert (await notifier.notify(failure_event)).ok
    assert httpserver.log[0][0].path == "/gotify/message"


async def test_the_renderer_writes_the_text(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/message").respond_with_json({"id": 1})
    rendering = {"subject_prefix": "[Prod]", "app_name": "Vault", "timezone": "Europe/Berlin"}
    async with make_notifier(base_url(httpserver), rendering=rendering) as notifier:
        assert (await notifier.notify(failure_event)).ok
    body = httpserver.log[0][0].get_json()
    assert body["title"] == "[Prod] Backup Failed: nightly-pg"
    assert body["message"].endswith("2026-11-24 06:00:00 CET · Sent by Vault\n")


async def test_429_is_transient_with_retry_after(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/message").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 7.0
    assert failed.reason == "rate limited by the service; it asks to wait 7s"
    assert failed.reply == "429 TOO MANY REQUESTS: slow down"
    assert failed.parks_channel is False


async def test_500_is_transient(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/message").respond_with_json(
        {"error": "Internal Server Error", "errorCode": 500, "errorDescription": "db locked"},
        status=500,
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == "the service failed (500 INTERNAL SERVER ERROR)"
    assert failed.reply is not None
    assert "db locked" in failed.reply
    assert failed.parks_channel is False


async def test_401_is_permanent_and_parks_the_channel(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/message").respond_with_json(
        {
            "error": "Unauthorized",
            "errorCode": 401,
            "errorDescription": "you need to provide a valid access token or user credentials "
            "to access this api",
        },
        status=401,
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)
    (failed,) = result.failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is True
    assert failed.reason == "the service refused the credentials"
    assert failed.reply is not None
    assert failed.reply.startswith("401 UNAUTHORIZED: ")
    assert "valid access token" in failed.reply
    assert failed.hint == (
        "check app_token: it must be an application's token (Gotify's Apps page), not a "
        "client token; it may have been deleted"
    )
    assert TOKEN not in repr(result)
    assert TOKEN not in caplog.text


async def test_404_is_permanent(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request("/wrong/message").respond_with_data("404 page not found", status=404)
    async with make_notifier(base_url(httpserver) + "/wrong") as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is False
    assert failed.reply == "404 NOT FOUND: 404 page not found"
    assert failed.reason == (
        "no Gotify message API at this address (wrong server_url, e.g. a missing path prefix)"
    )
    assert failed.hint == (
        "set server_url to the address of the Gotify web UI, with its path prefix if it has one"
    )


async def test_a_closed_port_is_transient(
    closed_port: int, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}") as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.recipient == f"http://127.0.0.1:{closed_port}"
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_the_token_never_appears_in_results_or_logs(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # a server that echoes the token back in its error
    httpserver.expect_request("/message").respond_with_data(f"bad key {TOKEN}", status=400)
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)
        report = await notifier.test("push")
    (failed,) = result.failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.reply == "400 BAD REQUEST: bad key ********"
    for text in (repr(result), repr(report), caplog.text, repr(notifier.config)):
        assert TOKEN not in text


async def test_send_hook_directly(httpserver: HTTPServer, failure_event: Event) -> None:
    httpserver.expect_request("/message").respond_with_json({"id": 1})
    plugin = default_registry().get("gotify")
    assert plugin is not None
    config = plugin.validate_config({"server_url": base_url(httpserver), "app_token": TOKEN})
    assert isinstance(config, GotifyConfig)
    results = await plugin.send(config, to_notification(failure_event), Renderer(), None, None)
    assert [r.status for r in results] == [Status.DELIVERED]
