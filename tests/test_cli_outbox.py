"""Durable mode from the command line: send, outbox, history, retry, worker, purge."""

from __future__ import annotations

import json
from pathlib import Path

from dbnotify.testing.smtpd import LocalSMTPServer

OUTBOX = """
[outbox]
path = "{path}"

[outbox.retry.default]
first_delay = "0.2s"
max_delay = "0.5s"
"""


async def test_retry_of_a_dead_recipient_sends_to_that_one_only_with_the_same_message_id(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    smtp.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    path = write_config(
        tmp_path / "c.toml",
        smtp.port,
        to='["ops@example.com", "gone@example.com"]',
        extra=OUTBOX.format(path=tmp_path / "outbox.sqlite"),
    )
    sent = await cli("send", "backup_failure", "-c", str(path), "--data", "job_name=nightly")
    assert sent.code == 1, sent.out + sent.err
    lines = sent.out.splitlines()
    assert "  ops-mail [channel] (channel): queued - queued as delivery #1" in lines
    assert any(
        line.startswith(
            "  #1 backup_failure ops-mail gone@example.com: dead (permanent) - "
            "the server refused this recipient - server said: 550 5.1.1 no such "
            "user [attempts 1, "
        )
        for line in lines
    ), sent.out
    assert [m.rcpt_tos for m in smtp.messages] == [("ops@example.com",)]

    listed = await cli("outbox", "-c", str(path), "--json")
    dead = json.loads(listed.out)["dead"]
    assert [(r["recipient"], r["status"], r["reply"]) for r in dead] == [
        ("gone@example.com", "dead", "550 5.1.1 no such user")
    ]

    del smtp.rcpt_replies["gone@example.com"]  # the mailbox was created meanwhile
    again = await cli("retry", "-c", str(path), "--dead")
    assert again.code == 0
    assert again.out.strip() == (
        f"1 delivery due again now; a running worker sends it (dbnotify worker -c {path})"
    )
    worked = await cli("worker", "-c", str(path), "--drain")
    assert worked.code == 0, worked.err
    assert [m.rcpt_tos for m in smtp.messages] == [("ops@example.com",), ("gone@example.com",)]
    first, second = (m.message["Message-ID"] for m in smtp.messages)
    assert first == second

    history = await cli("history", "-c", str(path), "--json")
    rows = {r["recipient"]: r for r in json.loads(history.out)}
    assert rows["ops@example.com"]["status"] == "delivered"
    assert rows["ops@example.com"]["attempts"] == 1
    assert rows["gone@example.com"]["status"] == "delivered"


async def test_commands_need_an_outbox(cli, write_config, tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", 2525)
    run = await cli("history", "-c", str(path))
    assert run.code == 2
    assert run.err.strip() == (
        f'error: {path} has no [outbox]; add one, e.g. [outbox] path = "/var/lib/dbnotify.sqlite"'
    )


async def test_no_wait_only_enqueues_and_purge_keeps_pending(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = write_config(
        tmp_path / "c.toml", smtp.port, extra=OUTBOX.format(path=tmp_path / "o.sqlite")
    )
    run = await cli("send", "test", "-c", str(path), "--no-wait")
    assert run.code == 0
    assert smtp.messages == []
    purged = await cli("purge", "-c", str(path), "--older-than", "0.001s")
    assert purged.out.strip() == "purged 0 notifications older than 0.001s"
    listed = await cli("outbox", "-c", str(path))
    assert listed.out.splitlines()[0] == "1 pending, 0 dead"
    await cli("worker", "-c", str(path), "--drain")
    assert len(smtp.messages) == 1
    purged = await cli("purge", "-c", str(path), "--older-than", "0.001s")
    assert purged.out.strip() == "purged 1 notification older than 0.001s"


async def test_worker_concurrency_shows_the_workers_default_and_refuses_zero(
    cli, write_config, tmp_path: Path
) -> None:
    shown = await cli("worker", "--help")
    assert "[default: 64; 128 on PostgreSQL] [x>=1]" in " ".join(shown.out.split())
    path = write_config(tmp_path / "c.toml", 2525, extra=OUTBOX.format(path=tmp_path / "o.sqlite"))
    refused = await cli("worker", "-c", str(path), "--concurrency", "0")
    assert refused.code == 2
    assert "Invalid value for '--concurrency': 0 is not in the range x>=1." in refused.err


async def test_retry_refuses_an_unknown_delivery_or_channel(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = write_config(
        tmp_path / "c.toml", smtp.port, extra=OUTBOX.format(path=tmp_path / "o.sqlite")
    )
    assert (await cli("send", "test", "-c", str(path), "--no-wait")).code == 0
    unknown = await cli("retry", "-c", str(path), "999")
    assert (unknown.code, unknown.out, unknown.err) == (
        2,
        "",
        "error: no delivery #999 in the outbox; `dbnotify outbox` lists them\n",
    )
    nosuch = await cli("retry", "-c", str(path), "--channel", "nosuch")
    assert (nosuch.code, nosuch.err) == (
        2,
        f"error: no channel named 'nosuch' in {path} or in the outbox (configured: ops-mail)\n",
    )
    pending = await cli("retry", "-c", str(path), "1")
    assert pending.code == 0
    assert pending.out == (
        f"1 delivery due again now; a running worker sends it (dbnotify worker -c {path})\n"
    )
    worked = await cli("worker", "-c", str(path), "--drain")
    assert worked.err.splitlines()[-1] == "worker stopped after 1 attempt"
    done = await cli("retry", "-c", str(path), "1")
    assert (done.code, done.out) == (
        1,
        f"0 deliveries due again now; a running worker sends them (dbnotify worker -c {path})\n",
    )


async def test_numbers_too_large_for_the_outbox_are_usage_errors(
    cli, write_config, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "c.toml", 2525, extra=OUTBOX.format(path=tmp_path / "o.sqlite"))
    huge = str(10**30)
    for args in (("retry", huge), ("history", "--limit", huge)):
        run = await cli(*args, "-c", str(path))
        assert run.code == 2, run.err
        assert "is not in the range" in run.err
        assert "Traceback" not in run.err
