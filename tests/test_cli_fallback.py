"""A fallback channel is told when a channel breaks, so that a broken SMTP password does
not silence every alert: a real SMTP server refuses the login (535), a real HTTP server
stands in for ntfy."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_httpserver import HTTPServer

from dbnotify.testing.smtpd import LocalSMTPServer

FALLBACK = """fallback = "ops-push"

[channels.ops-push]
type = "ntfy"
server_url = "{url}"
topic = "dbackup-alerts"

[outbox]
path = "{path}"
"""


async def test_a_parked_email_channel_is_told_once_on_its_fallback(
    cli, write_config, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/dbackup-alerts", method="POST").respond_with_json({"id": "1"})
    async with LocalSMTPServer(credentials={"dbackup": "right"}) as smtp:
        path = write_config(
            tmp_path / "c.toml",
            smtp.port,
            auth='user = "dbackup"\npassword = "wr0ng-Pa55word"\nallow_plaintext_auth = true\n',
            extra=FALLBACK.format(
                url=httpserver.url_for("/").rstrip("/"), path=tmp_path / "outbox.sqlite"
            ),
        )
        for job in ("nightly", "weekly", "hourly"):
            sent = await cli("send", "backup_failure", "-c", str(path), "--data", f"job_name={job}")
            assert sent.code == 1, sent.out + sent.err
        drained = await cli("worker", "-c", str(path), "--drain")
        assert drained.code == 0, drained.err
        assert smtp.messages == []

    told = [r for r, _ in httpserver.log]
    assert len(told) == 1, [r.get_data(as_text=True) for r in told]
    body = told[0].get_data(as_text=True)
    assert "notification channel 'ops-mail'" in body
    assert "Invalid login credentials" in body
    assert "parked since" in body
    assert "wr0ng-Pa55word" not in body

    outbox = json.loads((await cli("outbox", "-c", str(path), "--json")).out)
    assert list(outbox["parked"]) == ["ops-mail"]
    pushed = json.loads(
        (await cli("history", "-c", str(path), "--json", "--channel", "ops-push")).out
    )
    assert [(r["event_type"], r["status"]) for r in pushed] == [("system_error", "delivered")]


async def test_fallbacks_are_checked_at_load(cli, write_config, tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "c.toml",
        2525,
        extra='fallback = "ops-pager"\n\n[routing.fallbacks]\nops-mail = "ops-mail"\n',
    )
    run = await cli("validate", "-c", str(path))
    assert run.code == 2
    lines = [line.strip() for line in run.err.splitlines()]
    assert "routing.fallback: no channel named 'ops-pager' (defined: ops-mail)" in lines
    assert (
        "routing.fallbacks.ops-mail: a channel cannot be its own fallback; name another channel"
        in lines
    )
    assert (
        "routing.fallback: a fallback is told when the outbox parks a channel or gives up a "
        'delivery; add [outbox] (e.g. path = "/var/lib/dbackup/dbnotify-outbox.sqlite")'
    ) in lines


QUIET_FALLBACK = """fallback = "ops-push"

[channels.ops-push]
type = "ntfy"
server_url = "http://127.0.0.1:9"
topic = "dbackup-alerts"
quiet_hours = {{ from = "22:00", to = "07:00", timezone = "Europe/Berlin", except = {excepted} }}
rate_limit = "6/min"

[digest.daily]
channels = ["ops-push"]
events = {digested}
at = "08:00"

[outbox]
path = "{path}"
"""


async def test_validate_warns_when_a_fallbacks_notice_would_be_held(
    cli, write_config, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path / "c.toml",
        2525,
        extra=QUIET_FALLBACK.format(
            excepted='["warning"]',
            digested='["backup_success", "system_error"]',
            path=tmp_path / "o.sqlite",
        ),
    )
    run = await cli("validate", "-c", str(path))
    assert run.code == 0, run.err
    assert run.out.startswith(f"{path}: OK; channels: ops-mail (email), ops-push (ntfy)")
    assert run.err.splitlines() == [
        "warning: channels.ops-push.quiet_hours: holds the notice that a channel broke "
        "(system_error, failure) until the quiet hours end (07:00 Europe/Berlin), and "
        'ops-push is the fallback of ops-mail; add "failure" to except to be told at once',
        "warning: digest.daily: holds the notice that a channel broke (system_error) until "
        "the digest at 08:00 UTC, and ops-push is the fallback of ops-mail; take "
        "system_error out of its events or ops-push out of its channels to be told at once",
    ]


async def test_validate_is_quiet_when_a_fallbacks_notice_goes_at_once(
    cli, write_config, tmp_path: Path
) -> None:
    """``except`` names failure (or system_error), the digest does not take system_error;
    a rate limit only delays what goes over it, by one period at most: no warning."""
    for excepted in ('["failure"]', '["system_error"]'):
        path = write_config(
            tmp_path / "c.toml",
            2525,
            extra=QUIET_FALLBACK.format(
                excepted=excepted, digested='["backup_success"]', path=tmp_path / "o.sqlite"
            ),
        )
        run = await cli("validate", "-c", str(path))
        assert run.code == 0, run.err
        assert run.err == ""
