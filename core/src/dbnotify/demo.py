"""``dbnotify demo``: the whole pipeline against an embedded SMTP server, no setup.

Starts a real SMTP server (aiosmtpd) on 127.0.0.1, sends one of each catalogue event
through Notifier -> router -> email plugin -> shared renderer, writes every message that
arrives to a folder as ``.eml`` and ``.html``, and prints what was delivered where.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import attrs
from rich.console import Console
from rich.table import Table

from dbnotify.events import Event
from dbnotify.notifier import Notifier
from dbnotify.results import DispatchResult, Status
from dbnotify.testing.smtpd import LocalSMTPServer, Received

SAMPLES: tuple[Event, ...] = (
    Event(
        "backup_success",
        {
            "job_name": "nightly-pg",
            "source_name": "postgres-main",
            "duration_ms": 150_000,
            "size_bytes": 1_610_612_736,
        },
    ),
    Event(
        "backup_failure",
        {
            "job_name": "hourly-mysql",
            "source_name": "mysql-shop",
            "error": "mysqldump: Got error: 2013: Lost connection to server",
        },
    ),
    Event(
        "restore_complete",
        {"source_name": "postgres-main", "target_database": "staging", "duration_ms": 42_000},
    ),
    Event(
        "restore_failure",
        {
            "source_name": "mysql-shop",
            "target_database": "shop_copy",
            "error": "ERROR 1049 (42000): Unknown database 'shop_copy'",
        },
    ),
    Event(
        "config_backup",
        {
            "file_name": "dbackup-config-2026-11-24.json.enc",
            "size_bytes": 18_432,
            "encrypted": True,
        },
    ),
    Event(
        "system_error",
        {
            "component": "scheduler",
            "error": "job queue stalled",
            "details": "3 jobs waiting for more than 15 minutes",
        },
    ),
    Event(
        "user_login",
        {
            "user_name": "alice",
            "email": "alice@example.com",
            "ip_address": "192.0.2.10",
            "user_agent": "Firefox 133",
        },
    ),
    Event("user_created", {"user_name": "bob", "email": "bob@example.com", "created_by": "alice"}),
    Event("test"),
)


def demo_config(port: int) -> dict[str, object]:
    return {
        "channels": {
            "demo-mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from": "DBackup <dbackup@example.com>",
                "to": ["ops@example.com", "dba@example.com"],
            }
        },
        "routing": {
            "channels": ["demo-mail"],
            "events": {
                "config_backup": {"enabled": True},
                "user_login": {"enabled": True, "notify_user": "also"},
                "user_created": {"enabled": True, "notify_user": "also"},
            },
        },
    }


@attrs.define
class _Mailbox:
    """Writes each message as it arrives; remembers which file holds which Message-ID."""

    folder: Path
    files: dict[str, Path] = attrs.field(factory=dict)

    def __call__(self, received: Received) -> None:
        msg = received.message
        event = str(msg.get("X-DBackup-Event", "message"))
        # the admins' message and the user's copy of one event arrive in either order:
        # the name, not the number, says which is which
        copy = "-user" if ".user@" in str(msg["Message-ID"]) else ""
        stem = f"{len(self.files) + 1:02d}-{_slug(event)}{copy}"
        eml = self.folder / f"{stem}.eml"
        eml.write_bytes(received.data)
        html = msg.get_body(preferencelist=("html",))
        if html is not None:
            (self.folder / f"{stem}.html").write_text(html.get_content(), encoding="utf-8")
        self.files[str(msg["Message-ID"])] = eml


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")


async def _run(out: Path, console: Console) -> tuple[list[DispatchResult], _Mailbox]:
    mailbox = _Mailbox(out)
    async with LocalSMTPServer() as server:
        server.on_message.append(mailbox)
        console.print(
            f"Embedded SMTP server listening on 127.0.0.1:{server.port} "
            "(plain SMTP, loopback only)",
            highlight=False,
        )
        now = dt.datetime.now(dt.UTC)
        async with Notifier.from_config(demo_config(server.port)) as notifier:
            results = [await notifier.notify(attrs.evolve(e, timestamp=now)) for e in SAMPLES]
        return results, mailbox


def run(out: Path) -> bool:
    """Run the demo; True when every message was delivered."""
    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.eml"), *out.glob("*.html")]:
        old.unlink()
    results, mailbox = asyncio.run(_run(out, console))
    table = Table("event", "to", "status", "file", box=None)
    for result in results:
        for channel in result.channels:
            user_copy = channel.target.value == "user"
            message_id = f"<{result.notification_id}{'.user' if user_copy else ''}@example.com>"
            eml = mailbox.files.get(message_id)
            failed = [r for r in channel.recipients if r.status is Status.FAILED]
            status = (
                "delivered"
                if not failed
                else "[red]" + "; ".join(f"{r.recipient}: {r.reason}" for r in failed) + "[/red]"
            )
            table.add_row(
                result.event_type + (" (user copy)" if user_copy else ""),
                ", ".join(r.recipient for r in channel.recipients),
                status,
                eml.stem if eml else "-",
            )
    console.print(table)
    ok = all(r.ok for r in results)
    console.print(
        f"{len(mailbox.files)} messages written to {out.resolve()} "
        "(each as .eml and .html)" + ("" if ok else "; [red]some deliveries failed[/red]"),
        highlight=False,
    )
    return ok
