"""dbnotify -> real Postfix (STARTTLS, verified against a private CA) -> a Maildir on disk.

What is asserted is what a user's mail client would show: the delivered message as
Postfix stored it, with Postfix's own headers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dbnotify import Notifier
from dbnotify.events import Event
from dbnotify.results import Status

if TYPE_CHECKING:  # conftest is not importable at run time (--import-mode=importlib)
    from conftest import PostfixInstance

DOMAIN = "dbnotify.example"  # the instance's only domain (conftest.DOMAIN)
SENDER = f"DBackup <dbackup@{DOMAIN}>"


def config(postfix: PostfixInstance, to: list[str]) -> dict[str, Any]:
    return {
        "channels": {
            "ops-mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": postfix.port,
                "security": "starttls",
                "tls_ca_file": str(postfix.ca_pem),
                "from": SENDER,
                "to": to,
                "timeout": 20,
            }
        },
        "routing": {"channels": ["ops-mail"]},
    }


async def test_backup_failure_is_delivered_through_postfix_over_tls(
    postfix: PostfixInstance,
) -> None:
    notifier = Notifier.from_config(config(postfix, [f"Ops Team <ops@{DOMAIN}>"]))
    result = await notifier.notify(
        Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
    )

    assert result.ok, f"{result.failed}\n--- maillog ---\n{postfix.log()}"
    [channel] = result.channels
    [recipient] = channel.recipients
    assert recipient.status is Status.DELIVERED
    queued = re.search(r"queued as (\w+)", recipient.reply or "")
    assert queued, f"Postfix's reply has no queue id: {recipient.reply!r}"

    msg = await postfix.wait_for_mail("ops")

    # the headers a user sees
    assert msg["Subject"] == "[DBackup] Backup Failed: nightly-pg"
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("DBackup", f"dbackup@{DOMAIN}")
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Ops Team", f"ops@{DOMAIN}")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-DBackup-Event"] == "backup_failure"
    assert msg["Message-ID"].endswith(f"@{DOMAIN}>")
    assert msg["Date"] is not None

    # what Postfix added: the envelope, and one Received: line saying TLS was used
    assert msg["Return-Path"] == f"<dbackup@{DOMAIN}>"
    assert msg["Delivered-To"] == f"ops@{DOMAIN}"
    received = msg.get_all("Received")
    assert received is not None
    assert len(received) == 1, received
    hop = " ".join(str(received[0]).split())
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+", hop), hop
    assert f"by mx.{DOMAIN} (Postfix) with ESMTPS id {queued[1]}" in hop, hop
    assert f"for <ops@{DOMAIN}>" in hop, hop

    # the body: text and HTML alternatives of the same notification
    assert msg.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    plain = text.get_content()
    assert "Backup Failed" in plain
    assert "Backup job 'nightly-pg' failed. Error: disk full" in plain
    assert re.search(r"^Job:\s+nightly-pg$", plain, re.MULTILINE), plain
    assert re.search(r"^Error:\s+disk full$", plain, re.MULTILINE), plain
    markup = html.get_content()
    assert markup.lstrip().lower().startswith("<!doctype html>")
    assert "Backup Failed" in markup
    assert "#dc2626" in markup  # the failure colour of the header bar
    assert "nightly-pg" in markup
    assert "disk full" in markup


async def test_postfix_refuses_a_recipient_outside_its_domain(postfix: PostfixInstance) -> None:
    """The guard that keeps this Postfix from relaying, seen through dbnotify's results."""
    outside = "someone@elsewhere.example"
    notifier = Notifier.from_config(config(postfix, [f"oncall@{DOMAIN}", outside]))
    result = await notifier.notify(Event("backup_failure", {"job_name": "nightly-pg"}))

    by_address = {r.recipient: r for r in result.recipients}
    assert by_address[f"oncall@{DOMAIN}"].status is Status.DELIVERED
    refused = by_address[outside]
    assert refused.status is Status.FAILED
    assert "Relay access denied" in (refused.reply or ""), refused
    assert not result.ok

    msg = await postfix.wait_for_mail("oncall")
    assert msg["Subject"] == "[DBackup] Backup Failed: nightly-pg"
    [to_oncall, to_outside] = msg["To"].addresses
    assert (to_oncall.addr_spec, to_outside.addr_spec) == (f"oncall@{DOMAIN}", outside)
