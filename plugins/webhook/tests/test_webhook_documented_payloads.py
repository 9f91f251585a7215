"""Every payload shown in the docs loads, renders and arrives as the docs say."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from dbnotify import Event, Notifier, Status

DOCS = Path(__file__).resolve().parents[3] / "docs" / "channels"
TRICKY = 'Dump of "main" failed:\nC:\\backups\\main.sql & <more>'


def toml_blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "payload" in b]


def channel_block(source: str, url: str) -> dict[str, Any]:
    """The one channel of a documented snippet, pointed at the test server."""
    parsed = tomllib.loads(source)
    block = next(iter(parsed["channels"].values())) if "channels" in parsed else parsed
    return {**block, "type": "webhook", "webhook_url": url}


def strings(value: Any) -> list[str]:
    """Every string anywhere in a JSON document."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def documented() -> list[tuple[str, int]]:
    return [
        (page, index)
        for page in ("webhook.md", "teams.md")
        for index, _ in enumerate(toml_blocks(page))
    ]


def test_the_docs_show_payloads() -> None:
    assert len(toml_blocks("webhook.md")) == 3
    assert len(toml_blocks("teams.md")) == 1


@pytest.mark.parametrize(("page", "index"), documented())
async def test_documented_payload_is_sent(
    answer: Any, hook_url: str, received: Any, page: str, index: int
) -> None:
    answer()
    block = channel_block(toml_blocks(page)[index], hook_url)
    notifier = Notifier.from_config({"channels": {"doc": block}, "routing": {"channels": ["doc"]}})
    event = Event(
        "backup_failure", data={"job_name": "nightly-pg", "error": TRICKY}, message=TRICKY
    )
    result = await notifier.notify(event)
    assert [r.status for r in result.recipients] == [Status.DELIVERED], result
    (request,) = received()
    if block.get("content_type", "application/json") == "application/json":
        # the message arrives exactly, quotes, line break, backslashes and all
        assert any(TRICKY in text for text in strings(request["json"]))
    else:
        form = parse_qs(request["body"].decode())
        assert form == {"title": ["Backup Failed"], "message": [TRICKY]}


async def test_workflows_card(answer: Any, hook_url: str, received: Any) -> None:
    answer(status=202)
    block = channel_block(toml_blocks("teams.md")[0], hook_url)
    notifier = Notifier.from_config({"channels": {"wf": block}, "routing": {"channels": ["wf"]}})
    await notifier.notify(Event("backup_failure", data={"job_name": "nightly-pg", "error": TRICKY}))
    (request,) = received()
    (attachment,) = request["json"]["attachments"]
    assert request["json"]["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    title, message, facts, footer = attachment["content"]["body"]
    assert (title["text"], title["color"]) == ("Backup Failed", "Attention")
    assert message["text"] == f"Backup job 'nightly-pg' failed. Error: {TRICKY}"
    assert facts["facts"] == [
        {"title": "Job", "value": "nightly-pg"},
        {"title": "Error", "value": TRICKY},
    ]
    assert footer["text"].endswith(" · Sent by DBackup")
