"""The shared renderer as the email channel delivers it: what reaches a real SMTP
server (these need the email plugin, so they live with the cross-package tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbnotify import Event, Notifier, load_config
from dbnotify.testing.smtpd import LocalSMTPServer


async def test_encoded_newline_in_job_name_never_becomes_a_header(
    local_email_channel: Callable[..., dict[str, Any]],
) -> None:
    """CVE-2024-6923: the email package decodes =?...?= and may write the newline out."""
    async with LocalSMTPServer() as smtp:
        notifier = Notifier(
            load_config(
                {"channels": {"m": local_email_channel(smtp.port)}, "routing": {"channels": ["m"]}}
            )
        )
        hostile = "=?UTF-8?Q?=0A?=Bcc: evil@attacker.example"
        result = await notifier.notify(Event("backup_failure", {"job_name": hostile}))
        assert result.ok, result
    (received,) = smtp.messages
    assert received.rcpt_tos == ("ops@example.com", "dba@example.com")
    message = received.message
    assert message["Bcc"] is None
    assert [k for k, _ in message.items()].count("Subject") == 1
    assert "\n" not in str(message["Subject"])
    assert b"\r\nBcc:" not in received.data
    assert "Bcc: evil@attacker.example" in str(message["Subject"])


async def test_a_template_failing_at_send_time_is_not_blamed_on_the_plugin(tmp_path: Path) -> None:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "subject.txt").write_text("{{ tittle }}", encoding="utf-8")
    async with LocalSMTPServer() as server:
        notifier = Notifier.from_config(
            {
                "channels": {
                    "m": {
                        "type": "email",
                        "host": "127.0.0.1",
                        "port": server.port,
                        "security": "none",
                        "from": "d@example.com",
                        "to": "o@example.com",
                    }
                },
                "routing": {"channels": ["m"]},
                "rendering": {"templates_dir": str(folder)},
            }
        )
        result = await notifier.notify(Event("test"))
    (failed,) = result.failed
    assert failed.reason == "rendering failed: template error: 'tittle' is undefined"
    assert failed.hint == "check the templates in rendering.templates_dir"
