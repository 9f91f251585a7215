"""Delivery to a real local HTTP server, end to end through ``Notifier.notify``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from dbnotify import Event, FailureKind, Notifier, RecipientResult, Severity, Status
from dbnotify.channel import Renderer
from dbnotify.events import to_notification
from dbnotify_webhook.plugin import send, validate_config

WHEN = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
TRICKY = 'He said "stop"\nthen left C:\\backups\\db and a tab\there {{ not a template }}'


def failure_event(**overrides: Any) -> Event:
    options: dict[str, Any] = {
        "data": {"job_name": "nightly-pg", "source_name": "pg-main", "error": "disk full"},
        "timestamp": WHEN,
    }
    options.update(overrides)
    return Event("backup_failure", **options)


def only(result: Any) -> RecipientResult:
    (recipient,) = result.recipients
    assert isinstance(recipient, RecipientResult)
    return recipient


async def test_default_body_and_headers(
    answer: Any, httpserver: HTTPServer, make_notifier: Any, received: Any
) -> None:
    answer(body="ok")
    notifier: Notifier = make_notifier(
        auth_header="Bearer very-secret-bearer",
        headers={"X-Source": "dbackup", "X-Api-Key": "key-123"},
    )

    result = await notifier.notify(failure_event())

    assert only(result) == RecipientResult.delivered("webhook", reply="200 OK")
    (request,) = received()
    assert request["method"] == "POST"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["authorization"] == "Bearer very-secret-bearer"
    assert request["headers"]["x-source"] == "dbackup"
    assert request["headers"]["x-api-key"] == "key-123"
    assert request["json"] == {
        "notification_id": result.notification_id,
        "event_type": "backup_failure",
        "severity": "failure",
        "title": "Backup Failed",
        "message": "Backup job 'nightly-pg' failed. Error: disk full",
        "fields": [
            {"label": "Job", "value": "nightly-pg"},
            {"label": "Source", "value": "pg-main"},
            {"label": "Error", "value": "disk full"},
        ],
        "timestamp": "2025-03-04T05:06:07+00:00",
    }


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_other_methods(
    answer: Any, httpserver: HTTPServer, make_notifier: Any, received: Any, method: str
) -> None:
    answer(method=method)
    result = await make_notifier(method=method.lower()).notify(failure_event())
    assert only(result).status is Status.DELIVERED
    assert [r["method"] for r in received()] == [method]


async def test_json_template_keeps_quotes_newlines_and_backslashes(
    answer: Any, httpserver: HTTPServer, make_notifier: Any, received: Any
) -> None:
    answer(body="", status=204)
    notifier = make_notifier(
        payload='{"text": "{{ message }}", "title": "{{ title }}", "job": {{ job_name | tojson }},'
        ' "fields": {{ fields }}, "id": "{{ notification_id }}", "subject": "{{ subject }}"}'
    )
    event = Event(
        "custom_check",
        title='Check "A"',
        message=TRICKY,
        fields={"Path": "C:\\x\\y", "Quote": '"'},
        severity="warning",
        timestamp=WHEN,
    )

    result = await notifier.notify(event)

    assert only(result) == RecipientResult.delivered("webhook", reply="204 NO CONTENT")
    (request,) = received()
    assert request["headers"]["content-type"] == "application/json"
    assert request["json"] == {
        "text": TRICKY,
        "title": 'Check "A"',
        "job": None,
        "fields": [["Path", "C:\\x\\y"], ["Quote", '"']],
        "id": result.notification_id,
        "subject": '[DBackup] Check "A"',
    }


async def test_text_template_for_a_text_content_type(
    answer: Any, httpserver: HTTPServer, make_notifier: Any, received: Any
) -> None:
    answer()
    notifier = make_notifier(
        content_type="text/plain; charset=utf-8",
        payload="{{ severity | upper }} {{ title }}: {{ message }}",
    )
    await notifier.notify(failure_event())
    (request,) = received()
    assert request["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert request["body"].decode() == (
        "FAILURE Backup Failed: Backup job 'nightly-pg' failed. Error: disk full"
    )


async def test_text_content_type_without_template_sends_the_text(
    answer: Any, httpserver: HTTPServer, make_notifier: Any, received: Any
) -> None:
    answer()
    await make_notifier(content_type="text/plain").notify(failure_event())
    (request,) = received()
    assert request["headers"]["content-type"] == "text/plain"
    assert request["body"].decode() == Renderer().text(to_notification(failure_event()))


async def test_template_error_at_send_time_is_permanent_and_sends_nothing(
    httpserver: HTTPServer, make_notifier: Any, received: Any
) -> None:
    # the sample notification checked at load time is a failure: this branch passed
    notifier = make_notifier(
        payload='{% if severity == "success" %}{{ no_such_thing }}{% else %}{}{% endif %}'
    )
    result = await notifier.notify(Event("backup_success", data={"job_name": "x"}))
    recipient = only(result)
    assert recipient.status is Status.FAILED
    assert recipient.kind is FailureKind.PERMANENT
    assert recipient.reason is not None
    assert recipient.reason.startswith(
        "the payload template failed: 'no_such_thing' is undefined (the template can use: "
    )
    assert recipient.hint == (
        "fix the channel's payload template; `dbnotify test` renders it without sending"
    )
    assert received() == []


async def test_invalid_json_at_send_time_names_the_template(
    httpserver: HTTPServer, make_notifier: Any, received: Any
) -> None:
    notifier = make_notifier(
        payload='{% if severity == "success" %}{"ok": {{ title }}}{% else %}{}{% endif %}'
    )
    result = await notifier.notify(Event("backup_success", data={"job_name": "x"}))
    recipient = only(result)
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.reason == (
        "the payload template did not render valid JSON: Expecting value at line 1 column 8, "
        "near '{\"ok\": Backup Successful}'"
    )
    assert recipient.hint is not None
    assert "| tojson" in recipient.hint
    assert received() == []


async def test_rate_limited_is_transient_with_retry_after(
    answer: Any, httpserver: HTTPServer, make_notifier: Any
) -> None:
    answer(body="slow down", status=429, headers={"Retry-After": "7"})
    recipient = only(await make_notifier().notify(failure_event()))
    assert recipient == RecipientResult.failed(
        "webhook",
        FailureKind.TRANSIENT,
        "rate limited by the service; it asks to wait 7s",
        reply="429 TOO MANY REQUESTS: slow down",
        hint="the outbox retries after the wait; send fewer notifications to this channel",
        retry_after=7.0,
    )


async def test_server_error_is_transient(
    answer: Any, httpserver: HTTPServer, make_notifier: Any
) -> None:
    answer(body="boom", status=500)
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == "the service failed (500 INTERNAL SERVER ERROR)"
    assert recipient.reply == "500 INTERNAL SERVER ERROR: boom"
    assert recipient.parks_channel is False


async def test_unauthorized_is_permanent_and_parks_the_channel(
    answer: Any, httpserver: HTTPServer, make_notifier: Any
) -> None:
    answer(body="bad token", status=401)
    recipient = only(await make_notifier(auth_header="Bearer wrong").notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.parks_channel is True
    assert recipient.reason == "the service refused the credentials"
    assert recipient.reply == "401 UNAUTHORIZED: bad token"


async def test_not_found_is_permanent(
    answer: Any, httpserver: HTTPServer, make_notifier: Any
) -> None:
    answer(body="The requested URL /hooks/1234/s3cr3t-t0ken-0f-th3-h00k was not found", status=404)
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.parks_channel is False
    assert recipient.reason == (
        "the service does not know this address (webhook deleted, or wrong URL)"
    )
    # the path (and the token in it) is masked when the service echoes it
    assert recipient.reply == "404 NOT FOUND: The requested URL ******** was not found"


async def test_closed_port_is_transient(make_notifier: Any, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/hooks/1234/s3cr3t-t0ken-0f-th3-h00k"
    recipient = only(await make_notifier(webhook_url=url).notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == f"connection refused by 127.0.0.1:{closed_port}"


async def test_secrets_never_appear_in_results(
    answer: Any,
    httpserver: HTTPServer,
    make_notifier: Any,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_KEY", "key-from-env-1234")
    # a server that echoes what it got, secrets included
    answer(
        body=f"forbidden for {token} with Bearer very-secret-bearer and key-from-env-1234",
        status=403,
    )
    notifier = make_notifier(
        auth_header="Bearer very-secret-bearer", headers={"X-Key": {"env": "HOOK_KEY"}}
    )
    result = await notifier.notify(failure_event())
    recipient = only(result)
    assert recipient.reply == ("403 FORBIDDEN: forbidden for ******** with ******** and ********")
    shown = repr(result) + repr(notifier.config)
    for secret in (token, "very-secret-bearer", "key-from-env-1234"):
        assert secret not in shown


async def test_secrets_never_appear_in_logs(
    answer: Any,
    httpserver: HTTPServer,
    make_notifier: Any,
    token: str,
    client_logs: Any,
) -> None:
    answer(body="nope", status=500)
    await make_notifier(auth_header="Bearer very-secret-bearer").notify(failure_event())
    logged = client_logs()
    assert "webhook" in logged  # the dispatcher logged the outcome
    assert token not in logged
    assert "very-secret-bearer" not in logged


async def test_send_hook_directly_returns_one_result(
    answer: Any, httpserver: HTTPServer, hook_url: str
) -> None:
    answer()
    config = validate_config({"webhook_url": hook_url})
    notification = to_notification(failure_event())
    results = await send(config, notification, Renderer(), None, ("webhook",))
    assert [r.status for r in results] == [Status.DELIVERED]
    # a per-user copy is never posted to the webhook
    skipped = await send(config, notification, Renderer(), ("user@example.com",), None)
    assert skipped == [
        RecipientResult.skipped(
            "user@example.com", "a webhook channel cannot deliver to a person's address"
        )
    ]
    assert len(httpserver.log) == 1


async def test_severity_and_app_name_come_from_the_renderer(
    answer: Any, httpserver: HTTPServer, hook_url: str, received: Any
) -> None:
    answer()
    notifier = Notifier.from_config(
        {
            "channels": {
                "hook": {
                    "type": "webhook",
                    "webhook_url": hook_url,
                    "payload": '{"app": "{{ app_name }}", "color": "{{ color }}", '
                    '"when": "{{ timestamp }}"}',
                }
            },
            "routing": {"channels": ["hook"]},
            "rendering": {"app_name": 'Backups "prod"', "timezone": "Europe/Berlin"},
        }
    )
    await notifier.notify(failure_event(severity=Severity.WARNING))
    (request,) = received()
    assert request["json"] == {
        "app": 'Backups "prod"',
        "color": "#d97706",
        "when": "2025-03-04 06:06:07 CET",
    }
    assert json.loads(request["body"]) == request["json"]


async def test_redirect_is_not_followed_and_is_permanent(
    answer: Any, make_notifier: Any, received: Any, httpserver: HTTPServer
) -> None:
    answer(status=301, headers={"Location": httpserver.url_for("/elsewhere")})
    recipient = only(await make_notifier().notify(failure_event()))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.reason == "the service rejected the request (301 MOVED PERMANENTLY)"
    assert [r["path"] for r in received()] == ["/hooks/1234/s3cr3t-t0ken-0f-th3-h00k"]
