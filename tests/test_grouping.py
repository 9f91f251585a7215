"""Storm control: 200 failures in two seconds become one message per channel.

A real SMTP server (two admins) and a real HTTP server (a webhook) behind a durable
SQLite outbox; the host's own background worker sends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
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

[channels.ops-discord]
type = "discord"
webhook_url = "{discord}"

[routing]
channels = ["ops-mail", "ops-hook", "ops-discord"]

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
    httpserver.expect_request("/discord", method="POST").respond_with_data("", status=204)
    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(
            CONFIG.format(
                port=smtp.port,
                hook=httpserver.url_for("/hook"),
                discord=httpserver.url_for("/discord"),
                outbox=tmp_path / "o.sqlite",
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
                if smtp.messages and len(httpserver.log) >= 2:
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
    assert "and 175 more (the text part lists every one)" in html

    posted = {r.path: json.loads(r.get_data(as_text=True)) for r, _ in httpserver.log}
    assert len(httpserver.log) == 2
    assert set(posted) == {"/hook", "/discord"}
    assert "200 backups failed" in json.dumps(posted["/hook"])
    (embed,) = posted["/discord"]["embeds"]
    assert embed["title"] == "200 backups failed"

    assert len(rows) == 2 * 200 + 200 + 200  # two admins of the email channel; hook; Discord
    assert {r.status for r in rows} == {"delivered"}
    assert all(r.reason and r.reason.startswith("sent in a group of 200") for r in rows)
    print(f"200 failures -> {len(smtp.messages)} email, {len(httpserver.log)} posts")


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
    httpserver.expect_request("/discord", method="POST").respond_with_data("", status=204)
    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(
            CONFIG.format(
                port=smtp.port,
                hook=httpserver.url_for("/hook"),
                discord=httpserver.url_for("/discord"),
                outbox=tmp_path / "o.sqlite",
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
    assert sorted(r.path for r, _ in httpserver.log) == ["/discord", "/hook"]


def clock_at(local: str, zone: str) -> Callable[[], float]:
    """A clock that reads ``local`` (``2026-12-04 06:59:58``) in ``zone`` now, and runs on."""
    import datetime as dt
    import zoneinfo

    target = dt.datetime.fromisoformat(local).replace(tzinfo=zoneinfo.ZoneInfo(zone)).timestamp()
    offset = target - time.time()
    return lambda: time.time() + offset


async def run_until(notifier: Notifier, done: Callable[[], bool], within: float = 20) -> None:
    notifier.start()
    for _ in range(int(within * 10)):
        if done():
            return
        await asyncio.sleep(0.1)


QUIET = """
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com"]
quiet_hours = {{ from = "22:00", to = "07:00", timezone = "Europe/Berlin", except = ["failure"] }}

[routing]
channels = ["ops-mail"]

[outbox]
path = "{outbox}"
"""


async def test_quiet_hours_hold_all_but_failures_then_send_one_digest(tmp_path: Path) -> None:
    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(QUIET.format(port=smtp.port, outbox=tmp_path / "o.sqlite"), "utf-8")
        async with Notifier(load_config(path)) as notifier:
            notifier.clock = clock_at("2026-12-04 06:59:57", "Europe/Berlin")
            for job in ("a", "b", "c"):
                await notifier.notify(Event("backup_success", {"job_name": job}))
            await notifier.notify(Event("backup_failure", {"job_name": "d", "error": "x"}))
            await run_until(notifier, lambda: len(smtp.messages) >= 1, within=2)
            first = [m.message["Subject"] for m in smtp.messages]
            await run_until(notifier, lambda: len(smtp.messages) >= 2)
    assert first == ["[DBackup] Backup Failed: d"]  # a failure is not held
    assert [m.message["Subject"] for m in smtp.messages][1:] == [
        "[DBackup] While quiet: 3 backups succeeded"
    ]


DIGEST = """
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com"]

[routing]
channels = ["ops-mail"]

[outbox]
path = "{outbox}"

[digest.daily]
channels = ["ops-mail"]
events = ["backup_success"]
at = "08:00"
timezone = "UTC"
"""


async def test_a_daily_digest_summarises_at_its_time(tmp_path: Path) -> None:
    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(DIGEST.format(port=smtp.port, outbox=tmp_path / "o.sqlite"), "utf-8")
        async with Notifier(load_config(path)) as notifier:
            notifier.clock = clock_at("2026-12-04 07:59:57", "UTC")
            for job in ("nightly", "nightly", "weekly"):
                await notifier.notify(Event("backup_success", {"job_name": job}))
            rows = await notifier.history()
            assert {r.status for r in rows} == {"pending"}
            await run_until(notifier, lambda: bool(smtp.messages))
    (mail,) = smtp.messages
    assert mail.message["Subject"] == "[DBackup] Digest daily: 3 backups succeeded"
    text = mail.message.get_body(("plain",)).get_content()
    assert "Per job: nightly 2, weekly 1." in text


async def test_validate_refuses_what_cannot_be_held(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(
        QUIET.format(port=2525, outbox="x").split("[outbox]")[0].replace('"07:00"', '"7am"')
        + '[grouping.backup_falure]\nby = ["host"]\n'
        + '[grouping.default]\nwait = "0s"\n'
        + '[digest.daily]\nchannels = ["ops-mial"]\nevents = ["backup_sucess"]\nat = "08:00"\n'
        + '[digest.weekly]\nchannels = ["ops-mail"]\nevents = []\nat = "25:00"\n',
        "utf-8",
    )
    run = await cli("validate", "-c", str(path))
    assert run.code == 2
    lines = {line.strip() for line in run.err.splitlines()}
    for expected in (
        "channels.ops-mail.quiet_hours.to: must be a time of day as \"HH:MM\", 24-hour (got '7am')",
        "grouping.default.wait: must be more than 0 seconds (got '0s')",
        "digest.weekly.at: must be a time of day as \"HH:MM\", 24-hour (got '25:00')",
        "digest.daily.channels[0]: no channel named 'ops-mial'; did you mean 'ops-mail'?",
        "digest.daily.events[0]: unknown event type; did you mean 'backup_success'? (custom "
        "event types are allowed, but this one looks like a typo)",
        "grouping.backup_falure: unknown event type; did you mean 'backup_failure'? (custom "
        "event types are allowed, but this one looks like a typo)",
    ):
        assert expected in lines, run.err
    assert any(line.startswith("grouping.backup_falure.by") for line in lines), run.err


async def test_validate_says_holding_needs_the_outbox(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(
        DIGEST.format(port=2525, outbox="x").replace('[outbox]\npath = "x"\n', ""), "utf-8"
    )
    run = await cli("validate", "-c", str(path))
    assert (run.code, run.err.strip().splitlines()[-1].strip()) == (
        2,
        "digest: holds notifications in the outbox to send them together later; add "
        '[outbox] (e.g. path = "/var/lib/dbackup/dbnotify-outbox.sqlite")',
    ), run.err


REPEAT = """
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com"]

[routing]
channels = ["ops-mail"]

[outbox]
path = "{outbox}"

[grouping.backup_failure]
wait = "1s"
repeat = "4h"
"""


async def test_a_job_failing_again_is_counted_until_it_succeeds_then_resolved(
    tmp_path: Path,
) -> None:
    def subjects() -> list[str]:
        return [m.message["Subject"] for m in smtp.messages]

    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(REPEAT.format(port=smtp.port, outbox=tmp_path / "o.sqlite"), "utf-8")
        failure = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
        async with Notifier(load_config(path)) as notifier:
            for _ in range(10):
                await notifier.notify(failure)
            await run_until(notifier, lambda: bool(smtp.messages))
            assert subjects() == ["[DBackup] 10 backups failed: nightly-pg"]
            assert (
                "Per job: nightly-pg 10."
                in smtp.messages[0].message.get_body(("plain",)).get_content()
            )

            for _ in range(3):  # told already, within repeat: counted, not sent
                await notifier.notify(failure)
            await asyncio.sleep(1.5)
            assert subjects() == ["[DBackup] 10 backups failed: nightly-pg"]
            counted = [r for r in await notifier.history() if r.status == "skipped"]
            assert len(counted) == 3
            assert counted[0].reason is not None
            assert counted[0].reason.startswith(
                "counted, not sent: job 'nightly-pg' failed again within repeat (4h) of the "
                "message at "
            ), counted[0].reason
            assert counted[0].reason.endswith("13 failures since " + counted[0].reason[-25:])

            await notifier.notify(Event("backup_success", {"job_name": "nightly-pg"}))
            await run_until(notifier, lambda: len(smtp.messages) >= 3)
            await asyncio.sleep(1.5)
    assert sorted(subjects()[1:]) == [
        "[DBackup] Backup Successful: nightly-pg",
        "[DBackup] Resolved: nightly-pg",
    ]
    resolved = next(m for m in smtp.messages if "Resolved" in m.message["Subject"])
    assert (
        "succeeded after 13 failures since" in resolved.message.get_body(("plain",)).get_content()
    )


RATE = REPEAT.split("[grouping")[0].replace(
    'to = ["ops@example.com"]', 'to = ["ops@example.com"]\nrate_limit = "3/2s"'
)


async def test_beyond_a_channels_rate_limit_notifications_go_as_one(tmp_path: Path) -> None:
    async with LocalSMTPServer() as smtp:
        path = tmp_path / "dbnotify.toml"
        path.write_text(RATE.format(port=smtp.port, outbox=tmp_path / "o.sqlite"), "utf-8")
        async with Notifier(load_config(path)) as notifier:
            for job in range(10):
                await notifier.notify(Event("backup_failure", {"job_name": f"job-{job}"}))
            await run_until(notifier, lambda: len(smtp.messages) >= 3, within=1.5)
            early = len(smtp.messages)
            await run_until(notifier, lambda: len(smtp.messages) >= 4)
            await asyncio.sleep(0.5)
    subjects = [m.message["Subject"] for m in smtp.messages]
    assert early == 3, subjects
    assert subjects[3:] == ["[DBackup] Over the rate limit: 7 backups failed"], subjects
    assert len(subjects) == 4  # never dropped: the seven are in the one message


HOOK = """
[channels.ops-hook]
type = "webhook"
webhook_url = "{hook}"

[routing]
channels = ["ops-hook"]

[outbox]
path = "{outbox}"

[outbox.retry.default]
first_delay = "1s"
"""


async def test_a_429_slows_the_whole_channel_down(tmp_path: Path, httpserver: HTTPServer) -> None:
    """The service says "wait 2 s" once: the channel's other deliveries wait for it too,
    rather than each meeting its own 429; then every one is delivered."""
    seen: list[float] = []

    def answer(request: object) -> object:
        from werkzeug import Response

        seen.append(time.monotonic())
        if len(seen) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "2"})
        return Response("ok", status=200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(answer)
    path = tmp_path / "dbnotify.toml"
    path.write_text(
        HOOK.format(hook=httpserver.url_for("/hook"), outbox=tmp_path / "o.sqlite"), "utf-8"
    )
    async with Notifier(load_config(path)) as notifier:
        await notifier.notify(Event("backup_failure", {"job_name": "first"}))
        await run_until(notifier, lambda: len(seen) >= 1)
        await asyncio.sleep(0.3)  # the 429 is recorded
        for job in range(4):
            await notifier.notify(Event("backup_failure", {"job_name": f"job-{job}"}))
        await run_until(notifier, lambda: len(seen) >= 6)
        rows = await notifier.history()
    assert len(seen) == 6  # 5 deliveries, one of them twice
    assert min(seen[1:]) - seen[0] >= 1.9, [round(t - seen[0], 2) for t in seen]
    assert {r.status for r in rows} == {"delivered"}
