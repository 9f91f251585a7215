"""Telegram delivery against a real local HTTP server standing in for the Bot API: what
Telegram receives, what each answer means, and where the bot token never shows."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Event, FailureKind, Notifier, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify.plugins import default_registry
from dbnotify_telegram.settings import ParseMode
from dbnotify_telegram.text import LIMIT, message_text, units

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
PATH = f"/bot{TOKEN}/sendMessage"
OK = {"ok": True, "result": {"message_id": 7, "chat": {"id": -1001234567890}}}

MakeNotifier = Callable[..., Notifier]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def refuse(server: HTTPServer, status: int, description: str, **extra: Any) -> str:
    """Answer as the Bot API does: ``{"ok": false, "error_code": ..., "description": ...}``
    (returned, as sent)."""
    headers = extra.pop("headers", {})
    body = json.dumps(
        {"ok": False, "error_code": status, "description": description, **extra},
        separators=(",", ":"),
    )
    server.expect_request(PATH).respond_with_data(
        body, status=status, content_type="application/json", headers=headers
    )
    return body


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line but the fake server's own (werkzeug logs the paths it serves)."""
    return "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if r.name != "werkzeug")


async def test_what_telegram_receives(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(OK)
    async with make_notifier(base_url(httpserver)) as notifier:
        result = await notifier.notify(failure_event)

    assert result.ok, result
    (delivered,) = result.recipients
    assert delivered.recipient == "-1001234567890"
    assert delivered.status is Status.DELIVERED
    assert delivered.reply == "200 OK"

    ((request, _response),) = httpserver.log
    assert request.method == "POST"
    assert request.path == PATH
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {
        "chat_id": -1001234567890,
        "text": "<b>Backup Failed</b>\n\nBackup job 'nightly-pg' failed. Error: disk full\n\n"
        "<b>Job:</b> nightly-pg\n<b>Error:</b> disk full\n\n"
        "<i>2026-11-24 05:00:00 UTC · Sent by DBackup</i>",
        "parse_mode": "HTML",
        "disable_notification": False,
        "link_preview_options": {"is_disabled": True},
    }


async def test_every_value_is_html_escaped(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request(PATH).respond_with_json(OK)
    event = Event(
        "custom_alert",
        title="<b>Disk</b> & co",
        message='<a href="x">click</a>',
        fields={"<i>Host</i>": "db&1 <prod>"},
        severity="warning",
    )
    async with make_notifier(base_url(httpserver), rendering={"app_name": "<Vault>"}) as notifier:
        assert (await notifier.notify(event)).ok
    text = httpserver.log[0][0].get_json()["text"]
    assert text.startswith(
        "<b>&lt;b&gt;Disk&lt;/b&gt; &amp; co</b>\n\n"
        '&lt;a href="x"&gt;click&lt;/a&gt;\n\n'
        "<b>&lt;i&gt;Host&lt;/i&gt;:</b> db&amp;1 &lt;prod&gt;\n\n<i>"
    )
    assert text.endswith(" · Sent by &lt;Vault&gt;</i>")


async def test_markdown_v2_escapes_every_special_character(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request(PATH).respond_with_json(OK)
    event = Event("backup_failure", {"job_name": "pg_main", "error": "x*y [1](2) `z` #!."})
    async with make_notifier(base_url(httpserver), parse_mode="MarkdownV2") as notifier:
        assert (await notifier.notify(event)).ok
    body = httpserver.log[0][0].get_json()
    assert body["parse_mode"] == "MarkdownV2"
    assert body["text"].startswith(
        "*Backup Failed*\n\nBackup job 'pg\\_main' failed\\. Error: x\\*y \\[1\\]\\(2\\) "
        "\\`z\\` \\#\\!\\.\n\n*Job:* pg\\_main\n*Error:* x\\*y"
    )


async def test_plain_text_is_the_renderers_text(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_json(OK)
    async with make_notifier(
        base_url(httpserver), parse_mode="none", disable_notification=True, chat_id="@ops_room"
    ) as notifier:
        assert (await notifier.notify(failure_event)).ok
    assert httpserver.log[0][0].get_json() == {
        "chat_id": "@ops_room",
        "text": "Backup Failed\n=============\n\nBackup job 'nightly-pg' failed. Error: disk "
        "full\n\nJob:   nightly-pg\nError: disk full\n\n--\n2026-11-24 05:00:00 UTC · Sent by "
        "DBackup",
        "disable_notification": True,
        "link_preview_options": {"is_disabled": True},
    }


@pytest.mark.parametrize("mode", list(ParseMode))
def test_a_long_message_is_cut_to_4096_with_an_ellipsis(mode: ParseMode) -> None:
    notification = to_notification(
        Event("backup_failure", {"job_name": "nightly-pg", "error": "<&>🙂" * 3000})
    )
    text = message_text(notification, Renderer(), mode)
    visible = text
    if mode is ParseMode.HTML:
        visible = (
            text.replace("<b>", "")
            .replace("</b>", "")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
        )
        assert text.count("<b>") == text.count("</b>")
    if mode is ParseMode.MARKDOWN_V2:
        visible = text.replace("\\", "").replace("*", "")
    assert units(visible) <= LIMIT
    assert units(visible) >= LIMIT - 1  # an emoji is two units: one may not fit
    assert visible.endswith("…")


async def test_400_shows_telegrams_description(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    refuse(httpserver, 400, "Bad Request: chat not found")
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.recipient == "-1001234567890"
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is False
    assert failed.reason == "Telegram refused the message: Bad Request: chat not found"
    assert failed.reply == "400 Bad Request: chat not found"
    assert failed.hint == (
        "check chat_id: the bot must be a member of the chat (of a channel: an "
        "administrator); a group's id starts with -"
    )


async def test_a_long_description_is_shown_whole(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """Read from the whole answer, not from the 200 characters of a generic reply."""
    description = "Bad Request: chat not found because" + " because" * 40
    refuse(httpserver, 400, description)
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.reason == f"Telegram refused the message: {description}"
    assert failed.reply == f"400 {description}"
    assert failed.hint is not None
    assert failed.hint.startswith("check chat_id")


LONG = "Too Many Requests: " + "flood control exceeded for this chat, " * 6


async def test_a_wait_after_a_long_description_is_read(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """``parameters.retry_after`` after the first 200 characters (no Retry-After header):
    the outbox waits what Telegram asks."""
    body = refuse(httpserver, 429, LONG, parameters={"retry_after": 7})
    assert body.index('"retry_after"') > 200
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 7.0
    assert failed.reason == "rate limited by the service; it asks to wait 7s"
    assert failed.reply == f"429 {LONG}".rstrip()
    assert failed.hint == (
        "the outbox retries after the wait; send fewer notifications to this channel"
    )
    assert failed.parks_channel is False


async def test_a_new_chat_id_after_a_long_description_is_read(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    description = "Bad Request: group chat was upgraded to a supergroup chat" + " (moved)" * 30
    body = refuse(httpserver, 400, description, parameters={"migrate_to_chat_id": -1009876543210})
    assert body.index('"migrate_to_chat_id"') > 200
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.reason == f"Telegram refused the message: {description}"
    assert failed.hint == (
        "the group became a supergroup with a new id: set chat_id = -1009876543210"
    )


async def test_an_answer_that_is_not_json_gets_the_generic_reading(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        '{"ok":false,"description":"cut sh', status=400, content_type="application/json"
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.reason == "the service rejected the request (400 BAD REQUEST)"
    assert failed.reply == '400 BAD REQUEST: {"ok":false,"description":"cut sh'
    assert failed.hint == "this channel's settings do not fit what the service expects"


async def test_a_migrated_group_names_its_new_id(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    refuse(
        httpserver,
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        parameters={"migrate_to_chat_id": -1009876543210},
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.hint == (
        "the group became a supergroup with a new id: set chat_id = -1009876543210"
    )


@pytest.mark.parametrize(
    ("status", "description", "hint"),
    [
        (
            401,
            "Unauthorized",
            "check bot_token: it was revoked or mistyped; @BotFather shows the current one",
        ),
        (
            403,
            "Forbidden: bot was kicked from the supergroup chat",
            "the bot may not write to this chat (blocked by the user, removed from the group, "
            "or not an administrator of the channel); add it again",
        ),
        (
            404,
            "Not Found",
            "check bot_token (as @BotFather gives it) and api_url (a Bot API server)",
        ),
    ],
)
async def test_a_refused_bot_is_permanent_and_parks_the_channel(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    status: int,
    description: str,
    hint: str,
) -> None:
    refuse(httpserver, status, description)
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is True
    assert failed.reason == f"Telegram refused the message: {description}"
    assert failed.reply == f"{status} {description}"
    assert failed.hint == hint


async def test_a_server_that_is_no_bot_api(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    httpserver.expect_request(PATH).respond_with_data("<h1>Not Found</h1>", status=404)
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.PERMANENT
    assert failed.parks_channel is True
    assert failed.reason == "no Bot API at this address (wrong bot_token or api_url)"
    assert failed.reply == "404 NOT FOUND: <h1>Not Found</h1>"


async def test_429_with_retry_after_header(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    refuse(
        httpserver,
        429,
        "Too Many Requests: retry after 35",
        parameters={"retry_after": 35},
        headers={"Retry-After": "35"},
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 35.0
    assert failed.reason == "rate limited by the service; it asks to wait 35s"
    assert failed.reply == "429 Too Many Requests: retry after 35"


async def test_429_with_retry_after_in_the_body_only(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    refuse(httpserver, 429, "Too Many Requests: retry after 12", parameters={"retry_after": 12})
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after == 12.0
    assert failed.reason == "rate limited by the service; it asks to wait 12s"
    assert failed.parks_channel is False


async def test_500_is_transient(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    refuse(httpserver, 500, "Internal Server Error")
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == "the service failed (500 INTERNAL SERVER ERROR)"
    assert failed.reply == "500 Internal Server Error"
    assert not failed.parks_channel


async def test_a_closed_port_is_transient(
    closed_port: int, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    async with make_notifier(f"http://127.0.0.1:{closed_port}") as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_the_token_never_shows(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not in results, reports, reprs or log lines, though it is in every URL path."""
    caplog.set_level(logging.DEBUG)
    httpserver.expect_ordered_request(PATH).respond_with_json(OK)
    # a server that echoes the token and the URL back in its error
    refuse(httpserver, 400, f"Bad Request: token {TOKEN} at {base_url(httpserver)}{PATH}")
    async with make_notifier(base_url(httpserver)) as notifier:
        delivered = await notifier.notify(failure_event)
        failed = await notifier.notify(failure_event)
        report = await notifier.test("chat")
    assert delivered.ok
    (result,) = failed.failed
    assert result.reason == "Telegram refused the message: Bad Request: token ******** at ********"
    texts = [repr(delivered), repr(failed), repr(report), repr(notifier.config), ours(caplog)]
    assert "HTTP Request: POST" in texts[-1]  # httpx's request lines are searched too
    for text in texts:
        assert TOKEN not in text
        assert "AAHdqTcv" not in text


async def test_a_token_deep_in_a_long_description_never_shows(
    httpserver: HTTPServer, make_notifier: MakeNotifier, failure_event: Event
) -> None:
    """The whole description is shown now: a token after its first 200 characters too is
    masked (alone, and in the URL's path)."""
    description = "Bad Request: " + "x" * 250 + f" token {TOKEN} path {PATH}"
    refuse(httpserver, 400, description)
    async with make_notifier(base_url(httpserver)) as notifier:
        (failed,) = (await notifier.notify(failure_event)).failed
    assert failed.reason == (
        "Telegram refused the message: Bad Request: " + "x" * 250 + " token ******** path ********"
    )
    for text in (failed.reason, failed.reply, repr(failed)):
        assert "AAHdqTcv" not in text


async def test_the_token_never_shows_when_unreachable(
    closed_port: int,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_notifier(f"http://127.0.0.1:{closed_port}") as notifier:
        result = await notifier.notify(failure_event)
        report = await notifier.test("chat")
    for text in (repr(result), repr(report), ours(caplog)):
        assert "AAHdqTcv" not in text


async def test_send_hook_directly(httpserver: HTTPServer, failure_event: Event) -> None:
    httpserver.expect_request(PATH).respond_with_json(OK)
    plugin = default_registry().get("telegram")
    assert plugin is not None
    config = plugin.validate_config(
        {"api_url": base_url(httpserver), "bot_token": TOKEN, "chat_id": "12345"}
    )
    results = await plugin.send(config, to_notification(failure_event), Renderer(), None, None)
    assert [(r.recipient, r.status) for r in results] == [("12345", Status.DELIVERED)]
    assert httpserver.log[0][0].get_json()["chat_id"] == 12345


async def test_httpx_request_log_lines_show_no_token(
    httpserver: HTTPServer,
    make_notifier: MakeNotifier,
    failure_event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx logs every request with its URL at INFO; the token is in the URL's path."""
    caplog.set_level(logging.INFO)
    httpserver.expect_request(PATH).respond_with_json(OK)
    async with make_notifier(base_url(httpserver)) as notifier:
        assert (await notifier.notify(failure_event)).ok
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines, "httpx logged no request line"
    for line in lines:
        assert line.startswith(f"HTTP Request: POST {base_url(httpserver)}"), line
        assert TOKEN not in line
        assert "AAHdqTcv" not in line
