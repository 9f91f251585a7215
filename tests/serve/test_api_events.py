"""``POST /v1/events`` and ``GET /v1/notifications/{id}`` against the running server:
what DBackup sends, what reaches the SMTP server, and what the notification's page says."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbnotify.outbox.sqlite.writer import MODULE
from dbnotify.serve.idempotency import KEEP, IdempotencyKeys
from dbnotify.testing.smtpd import LocalSMTPServer

from .conftest import READ_TOKEN, SEND_TOKEN, Served, email_config

FAILURE = {"type": "backup_failure", "data": {"job_name": "nightly-pg", "error": "disk full"}}


async def settled(client: httpx.AsyncClient, notification_id: str) -> dict[str, Any]:
    """The notification's page once nothing in it is queued or pending."""
    deadline = time.monotonic() + 30
    while True:
        reply = await client.get(f"/v1/notifications/{notification_id}")
        assert reply.status_code == 200, reply.text
        page: dict[str, Any] = reply.json()
        if page["status"] not in ("queued", "pending") or time.monotonic() > deadline:
            return page
        await asyncio.sleep(0.2)


async def test_an_event_is_queued_then_delivered_and_its_page_says_so(
    served: Served, smtp: LocalSMTPServer
) -> None:
    async with served.client(SEND_TOKEN) as client:
        reply = await client.post("/v1/events", json=FAILURE)
    assert reply.status_code == 202
    accepted = reply.json()
    nid = accepted["id"]
    assert reply.headers["location"] == f"/v1/notifications/{nid}"
    assert accepted["event_type"] == "backup_failure"
    assert accepted["status"] == "queued"
    assert accepted["reason"] is None
    (target,) = accepted["targets"]
    assert target["channel"] == "ops-mail"
    assert target["type"] == "email"
    assert target["target"] == "channel"
    assert target["status"] == "queued"
    (recipient,) = target["recipients"]
    assert recipient["status"] == "queued"
    assert isinstance(recipient["delivery_id"], int)

    async with served.client(READ_TOKEN) as reader:
        page = await settled(reader, nid)
    assert page["status"] == "delivered"
    (target,) = page["targets"]
    (recipient,) = target["recipients"]
    assert recipient["recipient"] == "ops@example.com"
    assert recipient["status"] == "delivered"
    assert recipient["attempts"] == 1
    (message,) = smtp.messages
    assert message.rcpt_tos == ("ops@example.com",)
    assert message.message["Subject"].startswith("[FAILURE]") or "Backup Failed" in str(
        message.message["Subject"]
    )
    assert "disk full" in message.part("plain")


def outbox_writers(pid: int) -> list[int]:
    """The children of process ``pid`` that run an outbox's writer."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if MODULE.encode() in cmdline:
            found.append(int(child))
    return found


@pytest.mark.parametrize(("writer", "children"), [(None, 1), ("thread", 0)])
async def test_the_outbox_works_in_a_process_of_its_own_unless_the_file_says_thread(
    smtp: LocalSMTPServer,
    tmp_path: Path,
    serve: Callable[..., Served],
    writer: str | None,
    children: int,
) -> None:
    lines = f'writer = "{writer}"' if writer is not None else ""
    served = serve(email_config(tmp_path, smtp.port, outbox=lines))
    async with served.client(SEND_TOKEN) as client:
        reply = await client.post("/v1/events", json=FAILURE)
        assert reply.status_code == 202, reply.text
    async with served.client(READ_TOKEN) as reader:
        page = await settled(reader, reply.json()["id"])
    assert page["status"] == "delivered"
    assert len(smtp.messages) == 1
    found = outbox_writers(served.process.pid)
    assert len(found) == children
    assert served.stop() == 0  # Ctrl-C, as an operator stops it
    for child in found:  # ended and reaped with the server, not left behind
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    assert "Traceback" not in served.output()


async def test_a_failed_recipient_shows_kind_reply_and_hint(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    smtp.rcpt_replies["ops@example.com"] = "550 5.1.1 no such user"
    served = serve(email_config(tmp_path, smtp.port))
    async with served.client(SEND_TOKEN) as client:
        nid = (await client.post("/v1/events", json=FAILURE)).json()["id"]
    async with served.client(READ_TOKEN) as reader:
        page = await settled(reader, nid)
    assert page["status"] == "failed"
    (recipient,) = page["targets"][0]["recipients"]
    assert recipient["status"] == "failed"
    assert recipient["kind"] == "permanent"
    assert "550 5.1.1 no such user" in recipient["reply"]
    assert recipient["hint"]
    assert smtp.messages == []


async def test_an_unknown_notification_is_404(served: Served) -> None:
    async with served.client(READ_TOKEN) as client:
        reply = await client.get("/v1/notifications/0123456789abcdef0123456789abcdef")
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    (error,) = reply.json()["errors"]
    assert error["field"] == "id"
    assert error["value"] == "0123456789abcdef0123456789abcdef"


async def test_a_disabled_event_is_accepted_and_says_why_nothing_is_sent(
    served: Served, smtp: LocalSMTPServer
) -> None:
    async with served.client(SEND_TOKEN) as client:
        reply = await client.post(
            "/v1/events", json={"type": "user_login", "data": {"user_name": "alice"}}
        )
    assert reply.status_code == 202
    accepted = reply.json()
    assert accepted["status"] == "not sent"
    assert accepted["targets"] == []
    assert "event 'user_login' is disabled" in accepted["reason"]
    assert accepted["unrouted"] is False
    async with served.client(READ_TOKEN) as reader:
        page = (await reader.get(accepted["location"])).json()
    assert page["status"] == "not sent"
    assert page["reason"] == accepted["reason"]
    assert smtp.messages == []


async def test_an_event_type_outside_the_catalogue_brings_its_title(
    served: Served, smtp: LocalSMTPServer
) -> None:
    event = {
        "type": "disk_space_low",
        "title": "Disk space low",
        "message": "/var/backups is 93% full",
        "fields": {"Volume": "/var/backups"},
        "severity": "warning",
        "timestamp": "2026-11-24T05:00:00+01:00",
    }
    async with served.client(SEND_TOKEN) as client:
        nid = (await client.post("/v1/events", json=event)).json()["id"]
    async with served.client(READ_TOKEN) as reader:
        assert (await settled(reader, nid))["status"] == "delivered"
    (message,) = smtp.messages
    assert "Disk space low" in str(message.message["Subject"])
    assert "/var/backups is 93% full" in message.part("plain")


async def test_bad_events_are_422_naming_field_value_and_fix(served: Served) -> None:
    cases: list[tuple[dict[str, Any], str, str | None, str]] = [
        ({"type": "backup_failure"}, "data.job_name", None, "needs data key(s) job_name"),
        ({"type": "disk space!"}, "type", "disk space!", "must be letters, digits"),
        ({"type": "custom_thing"}, "title", None, "pass title"),
        (
            {"type": "custom", "title": "t", "severity": "warnin"},
            "severity",
            "'warnin'",
            "did you mean 'warning'?",
        ),
        (
            {"type": "test", "timestamp": "yesterday"},
            "timestamp",
            "yesterday",
            "ISO 8601",
        ),
        (
            {"type": "test", "timestamp": "2026-11-24T05:00:00"},
            "timestamp",
            "2026-11-24T05:00:00",
            "must carry a time zone",
        ),
        ({"type": "test", "colour": "red"}, "colour", "'red'", "unknown key"),
        ({"type": "test", "data": [1, 2]}, "data", None, "must be a table"),
    ]
    async with served.client(SEND_TOKEN) as client:
        for body, field, value, fix in cases:
            reply = await client.post("/v1/events", json=body)
            assert reply.status_code == 422, (body, reply.text)
            assert reply.headers["content-type"] == "application/problem+json"
            errors = reply.json()["errors"]
            found = [e for e in errors if e["field"] == field]
            assert found, (body, errors)
            if value is not None:
                assert found[0]["value"] == value, (body, found)
            assert fix in found[0]["fix"], (body, found)


async def test_bodies_that_are_not_events(served: Served) -> None:
    async with served.client(SEND_TOKEN) as client:
        not_json = await client.post(
            "/v1/events", content=b"{type:", headers={"content-type": "application/json"}
        )
        form = await client.post("/v1/events", data={"type": "test"})
        array = await client.post("/v1/events", json=[FAILURE])
        huge = await client.post(
            "/v1/events", json={"type": "test", "data": {"x": "y" * 1_100_000}}
        )
    assert not_json.status_code == 400
    assert "not valid JSON at line 1 column 2" in not_json.json()["detail"]
    assert form.status_code == 415
    assert form.json()["errors"][0]["field"] == "Content-Type"
    assert array.status_code == 422
    assert huge.status_code == 413
    assert "raise [serve] max_body" in huge.json()["errors"][0]["fix"]


async def test_tokens_and_scopes(served: Served) -> None:
    async with served.client(None) as anonymous:
        assert (await anonymous.post("/v1/events", json=FAILURE)).status_code == 401
    async with served.client(READ_TOKEN) as reader:
        refused = await reader.post("/v1/events", json=FAILURE)
    assert refused.status_code == 403
    assert "needs the 'send' scope" in refused.json()["errors"][0]["fix"]
    async with served.client(SEND_TOKEN) as sender:
        nid = (await sender.post("/v1/events", json=FAILURE)).json()["id"]
        assert (await sender.get(f"/v1/notifications/{nid}")).status_code == 403


async def test_same_idempotency_key_replays_the_first_answer_and_sends_once(
    served: Served, smtp: LocalSMTPServer
) -> None:
    key = {"Idempotency-Key": '"9f0c7f4e-2c1b-4d7e-9a55-0d6c2f9b1e11"'}
    async with served.client(SEND_TOKEN) as client:
        first = await client.post("/v1/events", json=FAILURE, headers=key)
        again = await client.post("/v1/events", json=FAILURE, headers=key)
        other = await client.post("/v1/events", json={**FAILURE, "type": "test"}, headers=key)
        bare = await client.post(
            "/v1/events", json=FAILURE, headers={"Idempotency-Key": "another-key"}
        )
    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["location"] == first.headers["location"]
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert bare.json()["id"] != first.json()["id"]
    async with served.client(READ_TOKEN) as reader:
        await settled(reader, first.json()["id"])
        await settled(reader, bare.json()["id"])
    assert len(smtp.messages) == 2


async def test_concurrent_duplicates_send_once(served: Served, smtp: LocalSMTPServer) -> None:
    key = {"Idempotency-Key": "concurrent-1"}
    async with served.client(SEND_TOKEN) as client:
        replies = await asyncio.gather(
            *(client.post("/v1/events", json=FAILURE, headers=key) for _ in range(8))
        )
    statuses = sorted(r.status_code for r in replies)
    assert set(statuses) <= {202, 409}
    ids = {r.json()["id"] for r in replies if r.status_code == 202}
    assert len(ids) == 1
    for busy in (r for r in replies if r.status_code == 409):
        assert busy.headers["retry-after"] == "1"
    async with served.client(READ_TOKEN) as reader:
        await settled(reader, ids.pop())
    await asyncio.sleep(1.5)  # a second delivery would have had its time
    assert len(smtp.messages) == 1


async def test_idempotency_keys_are_per_token(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served = serve(email_config(tmp_path, smtp.port))
    key = {"Idempotency-Key": "shared-key"}
    async with served.client(SEND_TOKEN) as sender, served.client() as admin:
        one = await sender.post("/v1/events", json=FAILURE, headers=key)
        two = await admin.post("/v1/events", json=FAILURE, headers=key)
    assert one.json()["id"] != two.json()["id"]
    assert "idempotent-replayed" not in two.headers


async def test_a_bad_idempotency_key_is_400(served: Served) -> None:
    async with served.client(SEND_TOKEN) as client:
        reply = await client.post(
            "/v1/events", json=FAILURE, headers={"Idempotency-Key": "has spaces in it"}
        )
    assert reply.status_code == 400
    (error,) = reply.json()["errors"]
    assert error["field"] == "Idempotency-Key"
    assert "printable ASCII" in error["fix"]


async def test_an_outbox_that_cannot_take_the_event_is_503(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    served = serve(email_config(tmp_path, smtp.port, outbox="busy_timeout = 0.2"))
    async with served.client(SEND_TOKEN) as client:
        assert (await client.post("/v1/events", json=FAILURE)).status_code == 202
        with locked(outbox):  # another process holds the file: writes wait, then fail
            reply = await client.post(
                "/v1/events", json=FAILURE, headers={"Idempotency-Key": "during-outage"}
            )
        assert reply.status_code == 503, reply.text
        assert reply.headers["retry-after"] == "5"
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["detail"].startswith("the outbox cannot take the event")
        # the refusal was not kept: the same key goes through once the outbox is back
        again = await client.post(
            "/v1/events", json=FAILURE, headers={"Idempotency-Key": "during-outage"}
        )
    assert again.status_code == 202
    assert "idempotent-replayed" not in again.headers
    assert "Traceback" not in served.output()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the SQLite file ``path``, as a busy process would."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_idempotency_keys_expire_after_a_day_and_the_oldest_go_past_the_limit() -> None:
    now = [0.0]
    keys = IdempotencyKeys(limit=2, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        assert keys.begin("dbackup", key, "body") is None
        keys.finish("dbackup", key, keys.answer(202, b"{}", {}, "body"))
    assert keys.begin("dbackup", "a", "body") is None  # the oldest went at the limit
    keys.finish("dbackup", "a", None)  # refused: forgotten, may be sent again
    assert keys.begin("dbackup", "c", "body") is not None
    now[0] = KEEP + 1
    assert keys.begin("dbackup", "c", "body") is None  # a day later: a new request


async def test_the_openapi_document_describes_the_event_endpoints(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        document = (await client.get("/openapi.json")).json()
    send = document["paths"]["/v1/events"]["post"]
    assert set(send["responses"]) >= {"202", "400", "401", "403", "409", "413", "415", "422", "503"}
    body = send["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["type"]
    assert body["properties"]["severity"]["enum"] == ["success", "failure", "info", "warning"]
    assert "404" in document["paths"]["/v1/notifications/{id}"]["get"]["responses"]
    assert "security" not in document["paths"]["/readyz"]["get"]
    assert "/metrics" not in document["paths"]  # text, not JSON: see docs/serving.md


def without_outbox(config: Path, extra: str = "") -> Path:
    """``config`` in direct mode: its [outbox] taken out, ``extra`` added."""
    text = config.read_text(encoding="utf-8")
    outbox = f'[outbox]\npath = "{config.parent / "outbox.sqlite"}"\n'
    assert outbox in text
    config.write_text(text.replace(outbox, "") + extra, encoding="utf-8")
    return config


async def test_a_repeat_while_the_first_is_in_flight_is_409_then_replayed(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # an SMTP server that never greets: the delivery waits
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = without_outbox(email_config(tmp_path, port), "\n[dispatch]\ndeadline = 2\n")
    served = serve(config)
    key = {"Idempotency-Key": "slow-one"}
    async with server, served.client(SEND_TOKEN) as client:
        first = asyncio.ensure_future(client.post("/v1/events", json=FAILURE, headers=key))
        await asyncio.sleep(0.8)
        busy = await client.post("/v1/events", json=FAILURE, headers=key)
        done = await first
        replay = await client.post("/v1/events", json=FAILURE, headers=key)
    assert busy.status_code == 409
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["errors"][0]["field"] == "Idempotency-Key"
    assert done.status_code == 200  # direct mode: the reply waited for the delivery
    assert done.json()["status"] == "failed"
    (recipient,) = done.json()["targets"][0]["recipients"]
    assert recipient["kind"] == "transient"
    assert replay.status_code == 200
    assert replay.content == done.content
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_key_outlives_a_restart_through_the_outbox(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    config = email_config(tmp_path, smtp.port)
    key = {"Idempotency-Key": "across-a-restart"}
    quiet = {"Idempotency-Key": "a-disabled-event"}
    disabled = {"type": "user_login", "data": {"user_name": "alice"}}
    before = serve(config)
    async with before.client(SEND_TOKEN) as client:
        first = await client.post("/v1/events", json=FAILURE, headers=key)
        assert (await client.post("/v1/events", json=disabled, headers=quiet)).status_code == 202
    async with before.client(READ_TOKEN) as reader:
        await settled(reader, first.json()["id"])
    before.stop()

    after = serve(config)
    async with after.client(SEND_TOKEN) as client:
        again = await client.post("/v1/events", json=FAILURE, headers=key)
        other = await client.post("/v1/events", json={"type": "test"}, headers=key)
        not_sent = await client.post("/v1/events", json=disabled, headers=quiet)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "delivered"  # the page as it stands now
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert not_sent.status_code == 202  # nothing was sent, and nothing is
    assert not_sent.json()["status"] == "not sent"
    await asyncio.sleep(1.5)  # a second delivery would have had its time
    assert len(smtp.messages) == 1
