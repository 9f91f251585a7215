"""A server's reply that is not UTF-8 is recorded once, shown with a visible marker, and
never makes the worker send again (it used to escape the outbox's record: resent for days)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dbnotify import Event, Notifier
from dbnotify.outbox.worker import Worker
from dbnotify.testing.scripted import ScriptedSMTPServer

LATIN1_REFUSAL = "550 5.1.1 Empf\udce4nger unbekannt"  # the byte 0xe4, as Latin-1 sends it


async def test_a_latin1_refusal_is_recorded_once_and_shown(
    tmp_path: Path, scripted: Callable[..., Awaitable[ScriptedSMTPServer]]
) -> None:
    server = await scripted(rcpt={"b@x.org": LATIN1_REFUSAL})
    config: dict[str, Any] = {
        "channels": {
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": server.port,
                "security": "none",
                "from": "d@x.org",
                "to": ["a@x.org", "b@x.org"],
            }
        },
        "routing": {"channels": ["mail"]},
        "outbox": {"path": str(tmp_path / "o.sqlite")},
    }
    notifier = Notifier.from_config(config)
    assert notifier.outbox is not None
    try:
        result = await notifier.notify(Event("test"))
        await Worker(notifier.outbox, notifier.deliverer).run(drain=True)
        rows = await notifier.history(delivery_ids=result.delivery_ids)
    finally:
        await notifier.aclose()
        await notifier.outbox.aclose()
    seen = {r.recipient: (r.status, r.kind, r.reply, r.attempts) for r in rows}
    assert seen == {
        "a@x.org": ("delivered", None, "250 2.0.0 queued", 1),
        "b@x.org": ("dead", "permanent", "550 5.1.1 Empf\ufffdnger unbekannt", 1),
    }
    assert sum(c.startswith("MAIL FROM") for c in server.commands) == 1  # sent once
