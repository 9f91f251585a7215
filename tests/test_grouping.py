"""Storm control: 200 failures in two seconds become one message per channel.

A real SMTP server (two admins) and a real HTTP server (a webhook) behind a durable
SQLite outbox; the host's own background worker sends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from pytest_httpserver import HTTPServer

from dbnotify import Event, Notifier, load_config
from dbnotify.testing.smtpd import LocalSMTPServer

CONFIG = """
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com", "dba@example.com"]

[channels.ops-hook]
type = "webhook"
webhook_url = "{hook}"

[routing]
channels = ["ops-mail", "ops-hook"]

[outbox]
path = "{outbox}"

[grouping.default]
by = ["type"]
wait = "3s"
interval = "5m"
"""


async def test_two_hundred_failures_make_one_message_per_channel(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(
            CONFIG.format(
                port=smtp.port, hook=httpserver.url_for("/hook"), outbox=tmp_path / "o.sqlite"
            ),
            encoding="utf-8",
        )
        async with Notifier(load_config(path)) as notifier:
            notifier.start()
            started = time.monotonic()
            for job in range(200):
                await notifier.notify(
                    Event("backup_failure", {"job_name": f"job-{job:03}", "error": "disk full"})
                )
            assert time.monotonic() - started < 2.5
            for _ in range(200):  # 20 s at most
                if smtp.messages and httpserver.log:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # anything more would have come by now
            rows = await notifier.history(limit=1000)

    assert len(smtp.messages) == 1, [m.message["Subject"] for m in smtp.messages]
    (mail,) = smtp.messages
    assert sorted(mail.rcpt_tos) == ["dba@example.com", "ops@example.com"]
    assert mail.message["Subject"] == "[DBackup] 200 backups failed"
    text = mail.message.get_body(("plain",)).get_content()
    assert all(f"job-{job:03}" in text for job in range(200))
    html = mail.message.get_body(("html",)).get_content()
    assert "180 more" in html

    assert len(httpserver.log) == 1
    posted = json.loads(httpserver.log[0][0].get_data(as_text=True))
    assert "200 backups failed" in json.dumps(posted)

    assert len(rows) == 2 * 200 + 200  # two admins of the email channel, one hook, each
    assert {r.status for r in rows} == {"delivered"}
    assert all(r.reason and r.reason.startswith("sent in a group of 200") for r in rows)
    print(f"200 failures -> {len(smtp.messages)} email, {len(httpserver.log)} webhook post")


PRODUCER = """
import asyncio, os, signal, sys
from dbnotify import Event, Notifier, load_config

async def main():
    async with Notifier(load_config(sys.argv[1])) as notifier:
        notifier.start()  # a host's own worker: it holds the open group when killed
        for job in range(50):
            await notifier.notify(Event("backup_failure", {"job_name": f"job-{job:02}"}))
        print("queued", flush=True)
        await asyncio.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_a_group_open_when_its_host_is_killed_is_sent_once_after(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(
            CONFIG.format(
                port=smtp.port, hook=httpserver.url_for("/hook"), outbox=tmp_path / "o.sqlite"
            ).replace('wait = "3s"', 'wait = "2s"'),
            encoding="utf-8",
        )
        killed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", PRODUCER, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert killed.returncode == -9, killed.stderr
        assert killed.stdout.strip() == "queued"
        assert smtp.messages == []  # the group was still gathering
        await asyncio.sleep(2.0)  # its wait runs out
        dbnotify = str(Path(sys.executable).with_name("dbnotify"))
        drained = await asyncio.create_subprocess_exec(
            dbnotify, "worker", "-c", str(path), "--drain",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await asyncio.wait_for(drained.communicate(), 60)
        assert drained.returncode == 0, err.decode()
    assert [m.message["Subject"] for m in smtp.messages] == ["[DBackup] 50 backups failed"]
    assert len(httpserver.log) == 1
