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
from collections.abc import Callable
from pathlib import Path

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
