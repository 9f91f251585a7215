"""Durable mode from the command line on a PostgreSQL outbox: send, worker, outbox,
history, retry, purge as on SQLite; ``outbox init``; ``outbox copy`` from SQLite; and the
password never shown, whatever the output.

Each test has a schema of its own in the session's throwaway server (``postgres``), the
password in an environment variable that ``[outbox] password`` names.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from dbnotify.outbox.sqlite.schema import LATEST as SQLITE_LATEST
from dbnotify.testing import postgres as pg
from dbnotify.testing.smtpd import LocalSMTPServer

PASSWORD_ENV = "DBNOTIFY_TEST_PG_PASSWORD"
RETRY = """
[outbox.retry.default]
first_delay = "0.2s"
max_delay = "0.5s"
"""


def pg_latest() -> int:
    """The PostgreSQL schema's version (imported here: psycopg may be missing, and then
    the ``postgres`` fixture skips)."""
    from dbnotify.outbox.postgres.schema import LATEST

    return LATEST


@attrs.frozen
class Outbox:
    """One test's PostgreSQL outbox: the ``[outbox]`` block, and what the CLI needs."""

    server: pg.Server
    schema: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def where(self) -> str:
        return f"{self.server.url} (schema {self.schema})"

    @property
    def toml(self) -> str:
        return (
            f'[outbox]\nurl = "{self.url}"\npassword = {{ env = "{PASSWORD_ENV}" }}\n'
            f'schema = "{self.schema}"\n{RETRY}'
        )

    @property
    def env(self) -> dict[str, str]:
        """The command's environment: the password where ``[outbox] password`` reads it,
        and no libpq variable of the developer's."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return {**clean, PASSWORD_ENV: self.server.password}

    def count(self, table: str) -> int:
        from psycopg import sql

        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(self.schema), sql.Identifier(table)
        )
        return int(self.server.admin(query)[0][0])


@pytest.fixture
def outbox(postgres: pg.Server) -> Outbox:
    return Outbox(postgres, f"t_{uuid.uuid4().hex[:12]}")


def secret_free(password: str, *runs: Any) -> None:
    """No output of any run shows the password."""
    for run in runs:
        assert password not in run.out + run.err, (run.out, run.err)


async def test_retry_of_a_dead_recipient_sends_to_that_one_only_with_the_same_message_id(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer, outbox: Outbox
) -> None:
    smtp.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    path = write_config(
        tmp_path / "c.toml",
        smtp.port,
        to='["ops@example.com", "gone@example.com"]',
        extra=outbox.toml,
    )
    env = outbox.env
    sent = await cli(
        "-v", "send", "backup_failure", "-c", str(path), "--data", "job_name=nightly", env=env
    )
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

    listed = await cli("outbox", "-c", str(path), "--json", env=env)
    dead = json.loads(listed.out)["dead"]
    assert [(r["recipient"], r["status"], r["reply"]) for r in dead] == [
        ("gone@example.com", "dead", "550 5.1.1 no such user")
    ]

    del smtp.rcpt_replies["gone@example.com"]
    again = await cli("retry", "-c", str(path), "--dead", env=env)
    assert again.code == 0
    assert again.out.strip() == (
        f"1 delivery due again now; a running worker sends it (dbnotify worker -c {path})"
    )
    worked = await cli("-vv", "worker", "-c", str(path), "--drain", env=env)
    assert worked.code == 0, worked.err
    assert [m.rcpt_tos for m in smtp.messages] == [("ops@example.com",), ("gone@example.com",)]
    first, second = (m.message["Message-ID"] for m in smtp.messages)
    assert first == second

    history = await cli("history", "-c", str(path), "--json", env=env)
    rows = {r["recipient"]: r for r in json.loads(history.out)}
    assert rows["ops@example.com"]["status"] == "delivered"
    assert rows["ops@example.com"]["attempts"] == 1
    assert rows["gone@example.com"]["status"] == "delivered"
    assert outbox.count("attempt") == 3  # on PostgreSQL, not in some file
    secret_free(outbox.server.password, sent, listed, again, worked, history)


async def test_no_wait_only_enqueues_and_purge_keeps_pending(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer, outbox: Outbox
) -> None:
    path = write_config(tmp_path / "c.toml", smtp.port, extra=outbox.toml)
    env = outbox.env
    run = await cli("send", "test", "-c", str(path), "--no-wait", env=env)
    assert run.code == 0, run.err
    assert smtp.messages == []
    purged = await cli("purge", "-c", str(path), "--older-than", "0.001s", env=env)
    assert purged.out.strip() == "purged 0 notifications older than 0.001s"
    listed = await cli("outbox", "-c", str(path), env=env)
    assert listed.out.splitlines()[0] == "1 pending, 0 dead"
    worked = await cli("worker", "-c", str(path), "--drain", env=env)
    assert worked.err.splitlines()[-1] == "worker stopped after 1 attempt"
    assert len(smtp.messages) == 1
    purged = await cli("purge", "-c", str(path), "--older-than", "0.001s", env=env)
    assert purged.out.strip() == "purged 1 notification older than 0.001s"
    assert outbox.count("notification") == 0


async def test_retry_refuses_an_unknown_delivery_or_channel(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer, outbox: Outbox
) -> None:
    path = write_config(tmp_path / "c.toml", smtp.port, extra=outbox.toml)
    env = outbox.env
    assert (await cli("send", "test", "-c", str(path), "--no-wait", env=env)).code == 0
    unknown = await cli("retry", "-c", str(path), "999", env=env)
    assert (unknown.code, unknown.out, unknown.err) == (
        2,
        "",
        "error: no delivery #999 in the outbox; `dbnotify outbox` lists them\n",
    )
    nosuch = await cli("retry", "-c", str(path), "--channel", "nosuch", env=env)
    assert (nosuch.code, nosuch.err) == (
        2,
        f"error: no channel named 'nosuch' in {path} or in the outbox (configured: ops-mail)\n",
    )
    worked = await cli("worker", "-c", str(path), "--drain", env=env)
    assert worked.err.splitlines()[-1] == "worker stopped after 1 attempt"
    done = await cli("retry", "-c", str(path), "1", env=env)
    assert (done.code, done.out) == (
        1,
        f"0 deliveries due again now; a running worker sends them (dbnotify worker -c {path})\n",
    )


# -- outbox init ----------------------------------------------------------------------


async def test_init_creates_the_tables_then_finds_them(
    cli, write_config, tmp_path: Path, outbox: Outbox
) -> None:
    path = write_config(tmp_path / "c.toml", 2525, extra=outbox.toml)
    first = await cli("outbox", "init", "-c", str(path), env=outbox.env)
    assert (first.code, first.out, first.err) == (
        0,
        f"outbox {outbox.where}: created, schema version {pg_latest()}\n",
        "",
    )
    assert outbox.count("notification") == 0
    second = await cli("outbox", "-c", str(path), "init", env=outbox.env)  # -c before, too
    assert (second.code, second.out) == (
        0,
        f"outbox {outbox.where}: already at schema version {pg_latest()}\n",
    )


async def test_init_refuses_a_newer_schema_and_a_wrong_password_in_one_line(
    cli, write_config, tmp_path: Path, outbox: Outbox
) -> None:
    path = write_config(tmp_path / "c.toml", 2525, extra=outbox.toml)
    assert (await cli("outbox", "init", "-c", str(path), env=outbox.env)).code == 0
    outbox.server.admin(f'UPDATE "{outbox.schema}".version SET version = 99')
    newer = await cli("outbox", "init", "-c", str(path), env=outbox.env)
    assert (newer.code, newer.out, newer.err) == (
        2,
        "",
        f"error: the outbox {outbox.url} has schema version 99, newer than this dbnotify "
        f"knows ({pg_latest()}); upgrade dbnotify, or point [outbox] url at another database or "
        "schema\n",
    )
    wrong = await cli(
        "-v", "outbox", "init", "-c", str(path), env={**outbox.env, PASSWORD_ENV: "Wr0ng-pw"}
    )
    assert wrong.code == 2
    assert wrong.out == ""
    assert wrong.err.startswith(f"error: PostgreSQL refused the login to the outbox {outbox.url}: ")
    assert wrong.err.endswith("; check [outbox] password (or PGPASSWORD, ~/.pgpass)\n")
    assert "Traceback" not in wrong.err
    assert "Wr0ng-pw" not in wrong.err
    secret_free(outbox.server.password, newer, wrong)


async def test_init_of_a_sqlite_file_creates_finds_and_migrates(
    cli, write_config, tmp_path: Path
) -> None:
    from dbnotify.outbox.sqlite import schema

    file = tmp_path / "o.sqlite"
    path = write_config(tmp_path / "c.toml", 2525, extra=f'[outbox]\npath = "{file}"\n')
    created = await cli("outbox", "init", "-c", str(path))
    assert (created.code, created.out) == (
        0,
        f"outbox {file}: created, schema version {SQLITE_LATEST}\n",
    )
    found = await cli("outbox", "init", "-c", str(path))
    assert found.out == f"outbox {file}: already at schema version {SQLITE_LATEST}\n"

    old = tmp_path / "old.sqlite"  # as dbnotify 0.1.0 left it: its tables, user_version 0
    with sqlite3.connect(old) as db:
        for statement in schema.statements(schema.V1):
            db.execute(statement)
    path = write_config(tmp_path / "old.toml", 2525, extra=f'[outbox]\npath = "{old}"\n')
    migrated = await cli("outbox", "init", "-c", str(path))
    assert (migrated.code, migrated.out) == (
        0,
        f"outbox {old}: migrated from 1 to {SQLITE_LATEST}\n",
    )


async def test_outbox_without_config_is_a_usage_error(cli) -> None:
    run = await cli("outbox")
    assert run.code == 2
    assert "Missing option '-c' / '--config'." in run.err


# -- outbox copy ----------------------------------------------------------------------


def two_channels(smtp: LocalSMTPServer, locked: LocalSMTPServer, outbox: str) -> str:
    """ops-mail (one recipient refused) and dba-mail (a wrong password: parks)."""
    return f"""
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {smtp.port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com", "gone@example.com"]

[channels.dba-mail]
type = "email"
host = "127.0.0.1"
port = {locked.port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["dba@example.com"]
user = "dbackup"
password = "wr0ng-Pa55word"
allow_plaintext_auth = true

[routing]
channels = ["ops-mail", "dba-mail"]

{outbox}
"""


async def test_copy_moves_work_history_and_parking_with_the_same_ids(
    cli, tmp_path: Path, smtp: LocalSMTPServer, outbox: Outbox
) -> None:
    smtp.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    async with LocalSMTPServer(credentials={"dbackup": "right"}) as locked:
        source = tmp_path / "sqlite.toml"
        file = tmp_path / "o.sqlite"
        source.write_text(two_channels(smtp, locked, f'[outbox]\npath = "{file}"\n{RETRY}'))
        target = tmp_path / "pg.toml"
        target.write_text(two_channels(smtp, locked, outbox.toml))
        env = outbox.env

        await cli("send", "backup_failure", "-c", str(source), "--data", "job_name=nightly")
        assert (await cli("send", "test", "-c", str(source), "--no-wait")).code == 0
        muted = await cli("mute", "-c", str(source), "--job", "weekly", "--for", "1d")
        assert muted.code == 0, muted.err
        before = {
            what: json.loads((await cli(*what.split(), "-c", str(source), "--json")).out)
            for what in ("outbox", "history", "mute list")
        }
        assert list(before["outbox"]["parked"]) == ["dba-mail"]

        copied = await cli(
            "outbox", "copy", "-c", str(source), "--to", outbox.url,
            "--schema", outbox.schema, "--password-env", PASSWORD_ENV, env=env,
        )  # fmt: skip
        assert (copied.code, copied.err) == (0, ""), copied.err
        assert copied.out == (
            f"copied 2 notifications (3 pending, 1 dead, 1 parked channel, 3 attempts) to "
            f'{outbox.where}; now set [outbox] url = "{outbox.url}", schema = '
            f'"{outbox.schema}", password = {{ env = "{PASSWORD_ENV}" }} and remove path\n'
        )
        after = {
            what: json.loads((await cli(*what.split(), "-c", str(target), "--json", env=env)).out)
            for what in ("outbox", "history", "mute list")
        }
        for both in (before, after):  # the recipients of one attempt tie: any order
            both["history"].sort(key=lambda r: (r["delivery_id"], r["recipient"]))
        assert after == before  # every row, id, time and reason as it was

        again = await cli(
            "outbox", "copy", "-c", str(source), "--to", outbox.url,
            "--schema", outbox.schema, "--password-env", PASSWORD_ENV, env=env,
        )  # fmt: skip
        assert (again.code, again.out, again.err) == (
            2,
            "",
            f"error: the PostgreSQL outbox {outbox.where} holds 2 notifications already; "
            "copy goes into an empty outbox only (nothing was copied)\n",
        )
        assert outbox.count("delivery") == 4

        # new work is numbered after the copied ids; the copied ids mean what they meant
        sent = await cli("send", "test", "-c", str(target), "--no-wait", env=env)
        assert "  ops-mail [channel] (channel): queued - queued as delivery #5" in sent.out
        locked.credentials = {"dbackup": "wr0ng-Pa55word"}  # the password is made right
        retried = await cli("retry", "-c", str(target), "--channel", "dba-mail", env=env)
        assert retried.out.startswith("3 deliveries due again now;"), retried.out
        worked = await cli("worker", "-c", str(target), "--drain", env=env)
        assert worked.code == 0, worked.err
        assert sorted(m.rcpt_tos for m in locked.messages) == [("dba@example.com",)] * 3
        listed = await cli("outbox", "-c", str(target), env=env)
        assert listed.out.splitlines()[0] == "0 pending, 3 dead"  # gone@ again, twice
        secret_free(outbox.server.password, copied, again, sent, retried, worked, listed)


async def test_copy_refuses_deliveries_leased_to_running_workers(
    cli, write_config, tmp_path: Path, outbox: Outbox
) -> None:
    from dbnotify.outbox.sqlite import SQLiteStore

    file = tmp_path / "o.sqlite"
    path = write_config(tmp_path / "c.toml", 2525, extra=f'[outbox]\npath = "{file}"\n')
    assert (await cli("send", "test", "-c", str(path), "--no-wait")).code == 0
    store = SQLiteStore(file)
    assert len(await store.claim("w1", limit=10, lease=600)) == 1  # a worker holds it
    await store.aclose()
    run = await cli(
        "outbox", "copy", "-c", str(path), "--to", outbox.url, "--schema", outbox.schema,
        env={**outbox.env, "PGPASSWORD": outbox.server.password},
    )  # fmt: skip
    assert run.code == 2
    assert re.fullmatch(
        rf"error: 1 delivery is leased to a worker of {re.escape(str(file))} \(until "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\): workers are still running; stop the workers "
        r"first \(and whatever sends to this outbox\), then copy again; a worker that was "
        r"killed leaves its lease until then\n",
        run.err,
    ), run.err
    assert outbox.server.admin(
        "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (outbox.schema,)
    ) == [(0,)]  # nothing written, not even the tables


@pytest.mark.parametrize(
    ("how", "expect_error"),
    [("PGPASSWORD", None), ("url", None), ("none", "PostgreSQL refused the login")],
)
async def test_copy_finds_the_password_as_libpq_does_and_never_shows_it(
    cli, write_config, tmp_path: Path, outbox: Outbox, how: str, expect_error: str | None
) -> None:
    file = tmp_path / "o.sqlite"
    path = write_config(tmp_path / "c.toml", 2525, extra=f'[outbox]\npath = "{file}"\n')
    assert (await cli("send", "test", "-c", str(path), "--no-wait")).code == 0
    password = outbox.server.password
    env = {k: v for k, v in outbox.env.items() if k != PASSWORD_ENV}
    env["HOME"] = str(tmp_path)  # no ~/.pgpass
    url = outbox.url
    if how == "PGPASSWORD":
        env["PGPASSWORD"] = password
    elif how == "url":
        url = url.replace("dbnotify@", f"dbnotify:{password}@")
    run = await cli(
        "-v", "outbox", "copy", "-c", str(path), "--to", url, "--schema", outbox.schema, env=env
    )
    secret_free(password, run)
    if expect_error is None:
        assert run.code == 0, run.err
        shown = outbox.url if how != "url" else url.replace(password, "********")
        assert run.out == (
            f"copied 1 notification (1 pending, 0 dead, 0 attempts) to {shown} (schema "
            f'{outbox.schema}); now set [outbox] url = "{outbox.url}", schema = '
            f'"{outbox.schema}" and remove path\n'
        )
    else:
        assert run.code == 2
        assert run.err.startswith(f"error: {expect_error} to the outbox {outbox.url}: ")


async def test_copy_refuses_a_missing_password_env_and_a_postgres_source(
    cli, write_config, tmp_path: Path, outbox: Outbox
) -> None:
    file = tmp_path / "o.sqlite"
    path = write_config(tmp_path / "c.toml", 2525, extra=f'[outbox]\npath = "{file}"\n')
    unset = await cli(
        "outbox", "copy", "-c", str(path), "--to", outbox.url, "--password-env", "NO_SUCH_VAR"
    )
    assert (unset.code, unset.err) == (
        2,
        "error: --password-env NO_SUCH_VAR: no such environment variable is set\n",
    )
    missing = await cli(
        "outbox", "copy", "-c", str(path), "--to", outbox.url, env={**outbox.env, "PGPASSWORD": "x"}
    )
    assert (missing.code, missing.err) == (
        2,
        f"error: there is no SQLite outbox at {file} (nothing to copy); check [outbox] path\n",
    )
    assert not file.exists()
    bad = await cli("outbox", "copy", "-c", str(path), "--to", "mysql://u:secret@h/db")
    assert bad.code == 2
    assert bad.err.startswith("error: --to must be a PostgreSQL URL such as ")
    assert "secret" not in bad.err
    pg_config = write_config(tmp_path / "pg.toml", 2525, extra=outbox.toml)
    already = await cli("outbox", "copy", "-c", str(pg_config), "--to", outbox.url, env=outbox.env)
    assert (already.code, already.err) == (
        2,
        f"error: {pg_config}: [outbox] is PostgreSQL already ({outbox.url}); copy reads the "
        "SQLite outbox that [outbox] path names\n",
    )


# -- the host API ---------------------------------------------------------------------


def test_notify_sync_again_and_again_each_call_on_a_loop_of_its_own(
    write_config: Callable[..., Path], tmp_path: Path, outbox: Outbox, monkeypatch
) -> None:
    from psycopg import sql

    from dbnotify import Event, Notifier, load_config

    # a user of its own, so that only this test's connections are counted
    role = f"sync_{uuid.uuid4().hex[:8]}"
    outbox.server.admin(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'sync-pw'").format(sql.Identifier(role))
    )
    outbox.server.admin(
        sql.SQL("GRANT CREATE ON DATABASE dbnotify TO {}").format(sql.Identifier(role))
    )
    monkeypatch.setenv(PASSWORD_ENV, "sync-pw")
    toml = outbox.toml.replace("dbnotify@", f"{role}@")
    notifier = Notifier(load_config(write_config(tmp_path / "c.toml", 2525, extra=toml)))
    ids = [notifier.notify_sync(Event("test")).delivery_ids for _ in range(5)]
    assert ids == [(1,), (2,), (3,), (4,), (5,)]
    # the pools of the loops gone are closed, not piled up; a closed connection's backend
    # takes a moment to leave pg_stat_activity, so look for a few seconds
    for _ in range(50):
        connections = outbox.server.admin(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)
        )[0][0]
        if connections <= 2:
            break
        time.sleep(0.1)
    assert connections <= 2
