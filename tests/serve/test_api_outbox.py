"""``GET /v1/history``, ``GET /v1/outbox`` and ``POST /v1/outbox/retry`` against the
running server: the CLI's filters and retries, over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbnotify.testing.smtpd import LocalSMTPServer

from .conftest import READ_TOKEN, SEND_TOKEN, Served, email_config
from .test_api_events import FAILURE, settled, without_outbox


async def until(client: httpx.AsyncClient, path: str, ready: Callable[[Any], bool]) -> Any:
    """``path``'s JSON once ``ready`` says so (or after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        reply = await client.get(path)
        assert reply.status_code == 200, reply.text
        if ready(reply.json()) or time.monotonic() > deadline:
            return reply.json()
        await asyncio.sleep(0.2)


async def send(served: Served, *events: dict[str, Any]) -> list[str]:
    async with served.client(SEND_TOKEN) as client:
        replies = [await client.post("/v1/events", json=e) for e in events]
    assert all(r.status_code == 202 for r in replies), [r.text for r in replies]
    return [r.json()["id"] for r in replies]


async def test_history_with_the_clis_filters(served: Served) -> None:
    first, second = await send(served, FAILURE, {"type": "test"})
    async with served.client(READ_TOKEN) as client:
        await settled(client, first)
        await settled(client, second)
        everything = (await client.get("/v1/history")).json()
        failures = (await client.get("/v1/history", params={"event": "backup_failure"})).json()
        delivered = (
            await client.get(
                "/v1/history",
                params={"status": "delivered", "channel": "ops-mail", "limit": "1"},
            )
        ).json()
        by_recipient = (
            await client.get("/v1/history", params={"recipient": "nobody@example.com"})
        ).json()
        future = (await client.get("/v1/history", params={"since": "2999-01-01"})).json()
        past = (await client.get("/v1/history", params={"until": "2000-01-01T00:00:00Z"})).json()
    assert [e["notification_id"] for e in everything["entries"]] == [second, first]
    assert everything["limit"] == 100
    (entry,) = failures["entries"]
    assert entry["notification_id"] == first
    assert entry["status"] == "delivered"
    assert entry["recipient"] == "ops@example.com"
    assert entry["channel"] == "ops-mail"
    assert entry["attempts"] == 1
    assert entry["at"].endswith("+00:00")
    assert len(delivered["entries"]) == 1
    assert delivered["limit"] == 1
    assert by_recipient["entries"] == []
    assert future["entries"] == past["entries"] == []


async def test_bad_history_filters_are_422_with_field_value_and_fix(served: Served) -> None:
    async with served.client(READ_TOKEN) as client:
        reply = await client.get(
            "/v1/history", params={"status": "delivred", "since": "last week", "limit": "0"}
        )
        typo = await client.get("/v1/history", params={"chanel": "ops-mail"})
        twice = await client.get("/v1/history?channel=a&channel=b")
    assert reply.status_code == 422
    errors = {e["field"]: e for e in reply.json()["errors"]}
    assert errors["status"]["value"] == "delivred"
    assert "did you mean 'delivered'?" in errors["status"]["fix"]
    assert errors["since"]["value"] == "last week"
    assert "ISO 8601" in errors["since"]["fix"]
    assert errors["limit"]["value"] == "0"
    assert "from 1 to 10000" in errors["limit"]["fix"]
    assert typo.status_code == 422
    assert "did you mean 'channel'?" in typo.json()["errors"][0]["fix"]
    assert twice.status_code == 422
    assert twice.json()["errors"][0]["value"] == "a, b"


async def test_dead_deliveries_are_listed_and_retried(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    smtp.rcpt_replies["ops@example.com"] = "550 5.1.1 no such user"
    served = serve(email_config(tmp_path, smtp.port))
    (nid,) = await send(served, FAILURE)
    async with served.client(READ_TOKEN) as reader:
        await settled(reader, nid)
        state = (await reader.get("/v1/outbox")).json()
    assert state["counts"] == {"pending": 0, "due": 0, "dead": 1, "delivered": 0}
    assert state["parked"] == []
    assert state["pending"] == []
    (dead,) = state["dead"]
    assert dead["status"] == "dead"
    assert dead["kind"] == "permanent"
    assert "550 5.1.1" in dead["reply"]

    del smtp.rcpt_replies["ops@example.com"]  # the mailbox exists now
    async with served.client() as admin:
        reply = await admin.post("/v1/outbox/retry", json={"dead": True})
        assert reply.status_code == 200
        assert reply.json() == {"retried": 1, "unparked": None}
        page = await until(admin, f"/v1/notifications/{nid}", lambda p: p["status"] == "delivered")
        after = (await admin.get("/v1/outbox")).json()
    assert page["targets"][0]["recipients"][0]["status"] == "delivered"
    assert after["counts"]["dead"] == 0
    (message,) = smtp.messages
    assert message.rcpt_tos == ("ops@example.com",)


async def test_retry_of_one_delivery_and_of_a_channel(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    smtp.rcpt_replies["ops@example.com"] = "550 5.1.1 no such user"
    served = serve(email_config(tmp_path, smtp.port))
    first, second = await send(served, FAILURE, FAILURE)
    async with served.client() as admin:
        await settled(admin, first)
        page = await settled(admin, second)
        delivery = page["targets"][0]["recipients"][0]["delivery_id"]
        del smtp.rcpt_replies["ops@example.com"]
        one = await admin.post("/v1/outbox/retry", json={"delivery_id": delivery})
        await until(admin, f"/v1/notifications/{second}", lambda p: p["status"] == "delivered")
        channel = await admin.post("/v1/outbox/retry", json={"channel": "ops-mail"})
        await until(admin, f"/v1/notifications/{first}", lambda p: p["status"] == "delivered")
    assert one.json() == {"retried": 1, "unparked": None}
    assert channel.json() == {"retried": 1, "unparked": "ops-mail"}
    assert len(smtp.messages) == 2


async def test_retry_refuses_what_it_cannot_find_or_do(served: Served) -> None:
    async with served.client() as admin:
        nothing = await admin.post("/v1/outbox/retry", json={})
        unknown = await admin.post("/v1/outbox/retry", json={"delivery_id": 999})
        channel = await admin.post("/v1/outbox/retry", json={"channel": "ops-mial"})
        zero = await admin.post("/v1/outbox/retry", json={"delivery_id": 0})
        text = await admin.post("/v1/outbox/retry", json={"delivery_id": "7"})
        huge = await admin.post("/v1/outbox/retry", json={"delivery_id": 2**67})
    async with served.client(READ_TOKEN) as reader:
        refused = await reader.post("/v1/outbox/retry", json={"dead": True})
    assert nothing.status_code == 422
    assert {e["field"] for e in nothing.json()["errors"]} == {"delivery_id", "dead", "channel"}
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no delivery #999 in the outbox"
    assert unknown.json()["errors"][0] == {
        "field": "delivery_id",
        "value": "999",
        "fix": "GET /v1/outbox and GET /v1/history list the deliveries and their channels",
    }
    assert channel.status_code == 404
    assert "no channel named 'ops-mial'" in channel.json()["detail"]
    assert "(configured: ops-mail)" in channel.json()["detail"]
    assert zero.status_code == 422
    assert zero.json()["errors"][0]["field"] == "delivery_id"
    assert text.status_code == 422
    assert huge.status_code == 422  # past a 64-bit id: refused, not a 500
    assert huge.json()["errors"][0]["field"] == "delivery_id"
    assert refused.status_code == 403
    assert "needs the 'admin' scope" in refused.json()["errors"][0]["fix"]


async def test_without_an_outbox_history_is_409_and_events_are_delivered_at_once(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served = serve(without_outbox(email_config(tmp_path, smtp.port)))
    async with served.client() as client:
        history = await client.get("/v1/history")
        state = await client.get("/v1/outbox")
        retry = await client.post("/v1/outbox/retry", json={"dead": True})
        sent = await client.post("/v1/events", json=FAILURE)
        page = await client.get(sent.headers["location"])
    for reply in (history, state, retry):
        assert reply.status_code == 409
        assert reply.json()["errors"][0]["field"] == "outbox"
        assert "add an [outbox]" in reply.json()["errors"][0]["fix"]
    assert sent.status_code == 200  # direct mode: delivered before the reply
    assert sent.json()["status"] == "delivered"
    (recipient,) = sent.json()["targets"][0]["recipients"]
    assert recipient["status"] == "delivered"
    assert recipient["delivery_id"] is None
    assert page.json() == sent.json()
    assert len(smtp.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_parked_channel_shows_in_the_outbox_and_the_metrics(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    wrong = "wrong-password-4567"
    async with LocalSMTPServer(credentials={"dbackup": "right-password-1234"}) as smtp:
        config = email_config(tmp_path, smtp.port)
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace(
                'security = "none"\n',
                f'security = "none"\nuser = "dbackup"\npassword = "{wrong}"\n'
                "allow_plaintext_auth = true\n",
            ),
            encoding="utf-8",
        )
        served = serve(config)
        (nid,) = await send(served, FAILURE)
        async with served.client(READ_TOKEN) as reader:
            state = await until(reader, "/v1/outbox", lambda s: s["parked"] != [])
            page = (await reader.get(f"/v1/notifications/{nid}")).json()
            metrics = (await reader.get("/metrics")).text
    (parked,) = state["parked"]
    assert parked["channel"] == "ops-mail"
    assert "Invalid login credentials" in parked["reason"]
    assert parked["since"].endswith("+00:00")
    (recipient,) = page["targets"][0]["recipients"]
    assert recipient["status"] == "pending"  # held with its channel, not given up
    assert recipient["kind"] == "permanent"
    assert recipient["hint"]
    assert 'dbnotify_channel_parked{channel="ops-mail"} 1.0' in metrics
    assert "dbnotify_outbox_parked_channels 1.0" in metrics
    assert smtp.messages == []
    for reply in (state, page):
        assert wrong not in str(reply)
