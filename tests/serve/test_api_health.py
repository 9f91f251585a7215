"""``/livez``, ``/readyz`` and ``/metrics`` against the running server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dbnotify.testing.smtpd import LocalSMTPServer

from .conftest import READ_TOKEN, SEND_TOKEN, Served, email_config
from .test_api_events import FAILURE, locked, settled


async def test_livez_and_readyz_are_public(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        live = await client.get("/livez")
        ready = await client.get("/readyz")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "outbox": "ok", "worker": "running"}


async def test_readyz_is_503_while_the_outbox_is_gone_and_200_when_back(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = email_config(tmp_path, smtp.port)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            f'path = "{tmp_path / "outbox.sqlite"}"',
            f'path = "{data / "outbox.sqlite"}"\nbusy_timeout = 0.2',
        ),
        encoding="utf-8",
    )
    served = serve(config)
    async with httpx.AsyncClient(base_url=served.url) as probe:
        assert (await probe.get("/readyz")).status_code == 200
        # a busy file makes the worker's next claim fail, and the store let go of it;
        # its folder then goes away, so it cannot open it again
        with locked(data / "outbox.sqlite"):
            await asyncio.sleep(1.5)
            data.rename(tmp_path / "elsewhere")
        try:
            gone = await probe.get("/readyz")
            async with served.client(SEND_TOKEN) as sender:
                refused = await sender.post("/v1/events", json=FAILURE)
            async with served.client(READ_TOKEN) as reader:
                unread = await reader.get("/v1/history")
        finally:
            (tmp_path / "elsewhere").rename(data)
        back = await probe.get("/readyz")
    assert gone.status_code == 503
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.headers["retry-after"] == "5"
    (error,) = gone.json()["errors"]
    assert error["field"] == "outbox"
    assert error["fix"].startswith("the outbox does not answer: ")
    assert refused.status_code == 503
    assert unread.status_code == 503
    assert unread.json()["detail"].startswith("the outbox cannot be read: ")
    assert back.status_code == 200
    assert "Traceback" not in served.output()


async def test_metrics_in_prometheus_format_with_a_read_token(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    smtp.rcpt_replies["bad@example.com"] = "550 5.1.1 no such user"
    served = serve(
        email_config(
            tmp_path,
            smtp.port,
            extra='[routing.events.user_login]\nenabled = true\nnotify_user = "only"\n',
        )
    )
    async with served.client(SEND_TOKEN) as sender:
        ok = (await sender.post("/v1/events", json=FAILURE)).json()["id"]
        dead = (
            await sender.post(
                "/v1/events",
                json={
                    "type": "user_login",
                    "data": {"user_name": "b"},
                    "user": {"email": "bad@example.com"},
                },
            )
        ).json()["id"]
        custom = await sender.post("/v1/events", json={"type": "my_own", "title": "Hello"})
        assert custom.status_code == 202
    async with served.client(READ_TOKEN) as reader:
        await settled(reader, ok)
        await settled(reader, dead)
        await settled(reader, custom.json()["id"])
        reply = await reader.get("/metrics")
        openmetrics = await reader.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    async with served.client(SEND_TOKEN) as sender:
        refused = await sender.get("/metrics")
    async with httpx.AsyncClient(base_url=served.url) as anonymous:
        unauthenticated = await anonymous.get("/metrics")
    assert refused.status_code == 403
    assert unauthenticated.status_code == 401
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }
    assert (
        samples[("dbnotify_notifications_accepted_total", (("event_type", "backup_failure"),))] == 1
    )
    assert samples[("dbnotify_notifications_accepted_total", (("event_type", "user_login"),))] == 1
    assert samples[("dbnotify_notifications_accepted_total", (("event_type", "other"),))] == 1
    delivered = (("channel", "ops-mail"), ("outcome", "delivered"))
    failed = (("channel", "ops-mail"), ("outcome", "failed"))
    assert samples[("dbnotify_deliveries_total", delivered)] == 2
    assert samples[("dbnotify_deliveries_total", failed)] == 1
    assert samples[("dbnotify_outbox_pending", ())] == 0
    assert samples[("dbnotify_outbox_dead", ())] == 1
    assert samples[("dbnotify_outbox_parked_channels", ())] == 0
    assert samples[("dbnotify_outbox_up", ())] == 1
