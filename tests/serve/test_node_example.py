"""The Node example (docs/examples/node/dbackup-client.mjs) works against a live server:
the machine's ``node`` sends an event as DBackup would, follows it until delivered, and
the message arrives at a real SMTP server.

Skipped where ``node`` is not installed, except under CI (``CI`` set), where the serve
session requires it and a missing one must not pass unnoticed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dbnotify.testing.smtpd import LocalSMTPServer

from .conftest import Served, email_config

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "docs" / "examples" / "node" / "dbackup-client.mjs"
NODE = shutil.which("node")

FOLLOWER = "dbackup-follow-token-0123456789abcdef"
FOLLOWER_TOKEN = f"""
[serve.tokens.dbackup-follow]
secret = "{FOLLOWER}"
scopes = ["send", "read"]
"""
"""DBackup's token when it also follows what became of its events."""


@pytest.fixture
def node() -> str:
    if NODE is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed, and CI runs the Node example (apt install nodejs)")
        pytest.skip("node is not installed")
    return NODE


async def _run(node: str, url: str, token: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(CLIENT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "DBNOTIFY_URL": url, "DBNOTIFY_TOKEN": token, "DBNOTIFY_WAIT": "60"},
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.fixture
async def following(smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]) -> Served:
    return serve(email_config(tmp_path, smtp.port, extra=FOLLOWER_TOKEN))


async def test_the_node_client_sends_and_follows_an_event(
    node: str, following: Served, smtp: LocalSMTPServer
) -> None:
    status, output = await _run(node, following.url, FOLLOWER)
    assert status == 0, output
    assert "accepted: notification " in output
    assert "targets: ops-mail" in output
    assert "ops-mail: delivered" in output
    assert "  ops@example.com: delivered" in output
    (message,) = smtp.messages
    assert message.rcpt_tos == ("ops@example.com",)
    assert "nightly-postgres" in message.message["Subject"]
    assert FOLLOWER not in following.output()


async def test_a_refused_event_prints_each_fix(node: str, following: Served) -> None:
    status, output = await _run(node, following.url, FOLLOWER, "backup failure", "{}")
    assert status == 2, output
    assert "event refused:" in output
    assert "422" in output or "400" in output
    assert "type (given: backup failure): " in output


async def test_the_node_client_waits_out_a_503_and_sends_once(
    node: str, smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """The outbox held by another process (an exclusive SQLite transaction, as a backup
    of the file or a migration would take): the server answers 503 with Retry-After, the
    client waits and sends the same request again with the same Idempotency-Key, and
    once the file is free the event is accepted and delivered, once."""
    config = email_config(tmp_path, smtp.port, extra=FOLLOWER_TOKEN)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[outbox]\n", "[outbox]\nbusy_timeout = 0.5\n"), "utf-8")
    served = serve(config)
    async with httpx.AsyncClient(base_url=served.url) as client:
        assert (await client.get("/readyz")).status_code == 200  # the file exists
    holder = sqlite3.connect(tmp_path / "outbox.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    process = await asyncio.create_subprocess_exec(
        node,
        str(CLIENT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "DBNOTIFY_URL": served.url, "DBNOTIFY_TOKEN": FOLLOWER},
    )
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
    holder.execute("ROLLBACK")
    holder.close()
    rest, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    output = first + rest.decode()
    assert process.returncode == 0, output
    assert first.startswith("not now (the outbox cannot take the event: "), output
    assert first.rstrip().endswith("retrying in 5 s with the same Idempotency-Key"), output
    assert "ops-mail: delivered" in output
    assert len(smtp.messages) == 1
