"""``dbnotify mute`` / ``mute list`` / ``unmute``: muted deliveries are skipped with the
mute's reason, in history, and sent again once the mute ends."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dbnotify.testing.smtpd import LocalSMTPServer

OUTBOX = """
[outbox]
path = "{path}"
"""


def config(write_config, tmp_path: Path, port: int) -> Path:  # type: ignore[no-untyped-def]
    return write_config(  # type: ignore[no-any-return]
        tmp_path / "c.toml", port, extra=OUTBOX.format(path=tmp_path / "outbox.sqlite")
    )


async def test_a_muted_channel_skips_with_the_reason_until_unmuted(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = config(write_config, tmp_path, smtp.port)
    made = await cli(
        "mute", "-c", str(path), "--channel", "ops-mail", "--for", "2h",
        "--reason", "storage maintenance",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert re.fullmatch(
        r"mute #1: channel ops-mail until \S+: storage maintenance; "
        r"`dbnotify unmute 1` ends it sooner",
        made.out.strip(),
    ), made.out

    sent = await cli("send", "backup_failure", "-c", str(path), "--data", "job_name=nightly")
    assert sent.code == 0, sent.out + sent.err
    assert smtp.messages == []
    (row,) = json.loads((await cli("history", "-c", str(path), "--json")).out)
    assert row["status"] == "skipped"
    assert re.fullmatch(
        r"muted by mute #1 \(channel ops-mail\) until \S+: storage maintenance", row["reason"]
    ), row["reason"]

    listed = await cli("mute", "list", "-c", str(path))
    assert listed.out.strip().startswith("mute #1: channel ops-mail until "), listed.out
    as_json = json.loads((await cli("mute", "list", "-c", str(path), "--json")).out)
    assert [(m["id"], m["scope"], m["value"]) for m in as_json] == [(1, "channel", "ops-mail")]

    ended = await cli("unmute", "1", "-c", str(path))
    assert (ended.code, ended.out.strip()) == (
        0,
        "mute #1 (channel ops-mail) ended; what follows is sent",
    )
    assert (await cli("mute", "list", "-c", str(path))).out.strip() == "no mute in force"
    again = await cli("send", "backup_failure", "-c", str(path), "--data", "job_name=nightly")
    assert again.code == 0, again.out + again.err
    assert len(smtp.messages) == 1


async def test_a_muted_job_skips_only_that_jobs_events(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = config(write_config, tmp_path, smtp.port)
    made = await cli("mute", "-c", str(path), "--job", "nightly", "--for", "30m")
    assert made.code == 0, made.err
    for job in ("nightly", "weekly"):
        sent = await cli("send", "backup_failure", "-c", str(path), "--data", f"job_name={job}")
        assert sent.code == 0, sent.out + sent.err
    assert len(smtp.messages) == 1
    assert "weekly" in smtp.messages[0].message["Subject"]


async def test_mute_refuses_what_it_cannot_do(cli, write_config, tmp_path: Path) -> None:
    path = config(write_config, tmp_path, 2525)
    cases = {
        ("--for", "1h"): "error: name one thing to mute: --channel NAME, --event TYPE or "
        "--job NAME",
        ("--channel", "ops-mail"): "error: say for how long: --for DURATION, e.g. --for 2h",
        ("--channel", "ops-mial", "--for", "1h"): f"error: no channel named 'ops-mial' in "
        f"{path}; did you mean 'ops-mail'? (configured: ops-mail)",
        ("--event", "backup_falure", "--for", "1h"): "error: unknown event type "
        "'backup_falure'; did you mean 'backup_failure'? (custom event types may be muted "
        "as named)",
        ("--channel", "ops-mail", "--for", "400d"): "error: --for 400d: at most a year; a "
        "mute is for maintenance, not forever",
        ("--channel", "ops-mail", "--for", "soon"): "error: --for must be seconds, or a "
        'duration such as "30s", "5m", "1h", "2d" (got \'soon\')',
    }
    for args, expected in cases.items():
        run = await cli("mute", "-c", str(path), *args)
        assert (run.code, run.err.strip()) == (2, expected), args
    gone = await cli("unmute", "7", "-c", str(path))
    assert (gone.code, gone.err.strip()) == (
        2,
        "error: no mute #7 in force; `dbnotify mute list` lists them",
    )
    plain = write_config(tmp_path / "plain.toml", 2525)
    needs = await cli("mute", "-c", str(plain), "--channel", "ops-mail", "--for", "1h")
    assert needs.code == 2
    assert "has no [outbox]" in needs.err
