"""The outbox file's schema version: an older file is upgraded in place and its work goes
on; a newer one is refused with a sentence that says what to do.

The 0.1.0 file is written here by hand, with the schema and the rows as dbnotify 0.1.0
wrote them (copied from that release, not imported), so that a later change to the
current schema cannot make this test pass by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from dbnotify.config.load import load_config
from dbnotify.errors import OutboxError
from dbnotify.outbox.model import RecipientState
from dbnotify.outbox.sqlite import SQLiteStore, schema
from dbnotify.outbox.worker import fingerprint
from dbnotify.testing.smtpd import LocalSMTPServer

DBNOTIFY = str(Path(sys.executable).with_name("dbnotify"))

SCHEMA_0_1_0 = """
CREATE TABLE IF NOT EXISTS notification (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    content TEXT NOT NULL,
    user_content TEXT
);
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notification(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    recipients TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    first_delay REAL NOT NULL,
    max_delay REAL NOT NULL,
    next_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_due ON delivery(state, next_at);
CREATE TABLE IF NOT EXISTS recipient (
    delivery_id INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    kind TEXT,
    reason TEXT,
    reply TEXT,
    hint TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (delivery_id, address)
);
CREATE TABLE IF NOT EXISTS attempt (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    kind TEXT,
    reason TEXT,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS attempt_at ON attempt(at);
CREATE TABLE IF NOT EXISTS parked (
    channel TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    fingerprint TEXT NOT NULL
);
"""
"""dbnotify 0.1.0's ``outbox/store.py`` SCHEMA, verbatim."""

CONFIG = """
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com", "gone@example.com"]

[channels.dba-mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["dba@example.com"]
{dba_extra}

[routing]
channels = ["ops-mail", "dba-mail"]

[outbox]
path = "{outbox}"
"""


@attrs.define
class OldFile:
    """An outbox file as dbnotify 0.1.0 left it, written with plain sqlite3."""

    path: Path
    now: float = attrs.field(factory=time.time)
    ids: dict[str, str] = attrs.field(factory=dict)
    """notification ids by name"""

    def create(self) -> None:
        with self._db() as db:
            db.executescript(SCHEMA_0_1_0)
            assert db.execute("PRAGMA user_version").fetchone()[0] == 0

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            yield db
        finally:
            db.close()

    def notification(self, name: str, *, user: bool = False) -> str:
        """A backup_failure notification, as 0.1.0's ``encode`` wrote it (an hour ago)."""
        ident = uuid.uuid4().hex
        self.ids[name] = ident
        content = {
            "id": ident,
            "event_type": "backup_failure",
            "severity": "failure",
            "title": f"Backup Failed: {name}",
            "message": f"The backup job {name} failed.",
            "fields": [["Job", name], ["Error", "disk full"]],
            "timestamp": "2026-11-24T05:00:00+00:00",
            "job_name": name,
        }
        user_content = {**content, "message": "Your backup failed."} if user else None
        with self._db() as db:
            db.execute(
                "INSERT INTO notification (id, event_type, created_at, content, user_content)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    ident,
                    "backup_failure",
                    self.now - 3600,
                    json.dumps(content),
                    json.dumps(user_content) if user_content else None,
                ),
            )
        return ident

    def delivery(
        self,
        name: str,
        channel: str,
        *,
        state: str,
        attempts: int,
        target: str = "channel",
        recipients: list[str] | None = None,
    ) -> int:
        """A delivery of ``name``'s notification, due a minute ago, expiring in a day."""
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO delivery (notification_id, channel, target, recipients, state,"
                " attempts, max_attempts, first_delay, max_delay, next_at, expires_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, 12, 30, 3600, ?, ?, ?)",
                (
                    self.ids[name],
                    channel,
                    target,
                    json.dumps(recipients) if recipients is not None else None,
                    state,
                    attempts,
                    self.now - 60,
                    self.now + 86400,
                    self.now - 60,
                ),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def attempt(
        self,
        delivery: int,
        address: str,
        *,
        status: str,
        recipient_status: str,
        kind: str | None = None,
        reason: str | None = None,
        reply: str | None = None,
    ) -> None:
        """One attempt of 0.1.0, with the recipient's state it left."""
        at = self.now - 120
        with self._db() as db:
            db.execute(
                "INSERT INTO recipient (delivery_id, address, status, kind, reason, reply,"
                " hint, attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, 1, ?)",
                (delivery, address, recipient_status, kind, reason, reply, at),
            )
            db.execute(
                "INSERT INTO attempt (delivery_id, at, address, status, kind, reason, reply)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (delivery, at, address, status, kind, reason, reply),
            )

    def park(self, channel: str, reason: str, channel_fingerprint: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO parked (channel, reason, at, fingerprint) VALUES (?, ?, ?, ?)",
                (channel, reason, self.now - 120, channel_fingerprint),
            )


async def dbnotify(*args: str) -> tuple[int, str]:
    """The installed command, without blocking the loop the SMTP server runs on."""
    proc = await asyncio.create_subprocess_exec(
        DBNOTIFY, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def write_config(path: Path, port: int, outbox: Path, *, dba_extra: str = "") -> Path:
    path.write_text(
        CONFIG.format(port=port, outbox=outbox, dba_extra=dba_extra),
        encoding="utf-8",
    )
    return path


async def test_a_0_1_0_outbox_is_upgraded_in_place_and_its_work_goes_on(
    tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    config = write_config(tmp_path / "dbnotify.toml", smtp.port, outbox)
    old = OldFile(outbox)
    old.create()
    # waiting for a retry: 451 on the first attempt
    old.notification("retried")
    retried = old.delivery("retried", "ops-mail", state="pending", attempts=1)
    old.attempt(
        retried,
        "ops@example.com",
        status="failed",
        recipient_status="pending",
        kind="transient",
        reason="the server refused this recipient",
        reply="451 4.2.0 mailbox busy",
    )
    # never tried: a user's copy, with the user's own text
    old.notification("for-alice", user=True)
    user_copy = old.delivery(
        "for-alice",
        "ops-mail",
        state="pending",
        attempts=0,
        target="user",
        recipients=["alice@example.com"],
    )
    # dead: 550 for one recipient, delivered to the other
    old.notification("dead")
    dead = old.delivery("dead", "ops-mail", state="done", attempts=1)
    old.attempt(
        dead, "ops@example.com", status="delivered", recipient_status="delivered", reply="250 OK"
    )
    old.attempt(
        dead,
        "gone@example.com",
        status="failed",
        recipient_status="dead",
        kind="permanent",
        reason="the server refused this recipient",
        reply="550 5.1.1 no such user",
    )
    # parked: bad credentials on dba-mail, whose configuration has not changed since
    old.notification("parked")
    parked = old.delivery("parked", "dba-mail", state="pending", attempts=1)
    old.attempt(
        parked,
        "dba@example.com",
        status="failed",
        recipient_status="pending",
        kind="permanent",
        reason="Invalid login credentials",
        reply="535 5.7.8 no",
    )
    old.park("dba-mail", "Invalid login credentials", fingerprint(channel(config, "dba-mail")))

    # the new dbnotify drains it: the due ones go, the dead and the parked ones stay
    code, output = await dbnotify("worker", "-c", str(config), "--drain")
    assert code == 0, output
    assert "3 pending, 2 due now" in output  # dba-mail's is parked: not due
    assert user_version(outbox) == schema.LATEST
    sent = {m.rcpt_tos: m for m in smtp.messages}
    assert set(sent) == {("ops@example.com",), ("alice@example.com",)}
    assert old.ids["retried"] in sent[("ops@example.com",)].message["Message-ID"]
    assert "Your backup failed." in sent[("alice@example.com",)].part("plain")

    store = SQLiteStore(outbox)
    try:
        rows = {r.delivery_id: r for r in await store.history() if r.delivery_id != dead}
        assert (rows[retried].status, rows[retried].attempts) == ("delivered", 2)
        assert (rows[user_copy].status, rows[user_copy].recipient) == (
            "delivered",
            "alice@example.com",
        )
        dead_rows = {r.recipient: r for r in await store.history(delivery_ids=[dead])}
        assert {k: (r.status, r.reply) for k, r in dead_rows.items()} == {
            "ops@example.com": ("delivered", "250 OK"),
            "gone@example.com": ("dead", "550 5.1.1 no such user"),
        }
        assert (rows[parked].status, rows[parked].reason) == (
            "pending",
            "Invalid login credentials",
        )
        # the history of 0.1.0's attempts is intact
        failures = {(f.delivery_id, f.reply) for f in await store.failures_since(0)}
        assert failures == {
            (retried, "451 4.2.0 mailbox busy"),
            (dead, "550 5.1.1 no such user"),
            (parked, "535 5.7.8 no"),
        }
        assert list(await store.parked()) == ["dba-mail"]

        # dead stays dead until an operator says otherwise
        code, output = await dbnotify("retry", "-c", str(config), "--dead")
        assert (code, output.strip()) == (
            0,
            f"1 delivery due again now; a running worker sends it (dbnotify worker -c {config})",
        )
        code, output = await dbnotify("worker", "-c", str(config), "--drain")
        assert code == 0, output
        assert smtp.messages[-1].rcpt_tos == ("gone@example.com",)
        assert old.ids["dead"] in smtp.messages[-1].message["Message-ID"]
        assert {r.status for r in await store.history(delivery_ids=[dead])} == {"delivered"}
        assert list(await store.parked()) == ["dba-mail"]  # still: nothing changed for it

        # parked until its configuration changes
        write_config(config, smtp.port, outbox, dba_extra="timeout = 20")
        code, output = await dbnotify("worker", "-c", str(config), "--drain")
        assert code == 0, output
        assert smtp.messages[-1].rcpt_tos == ("dba@example.com",)
        assert old.ids["parked"] in smtp.messages[-1].message["Message-ID"]
        assert await store.parked() == {}
        # nothing lost, nothing twice
        assert await store.counts() == {"pending": 0, "due": 0, "dead": 0, "delivered": 5}
        assert len(smtp.messages) == 4  # and the one 0.1.0 delivered
        assert len(await store.history(status=RecipientState.DELIVERED)) == 5
    finally:
        await store.aclose()


def channel(config: Path, name: str) -> Any:
    return load_config(config).channels[name]


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        assert isinstance(found, int)
        return found
    finally:
        db.close()


async def test_a_new_file_gets_the_latest_schema_and_its_version(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    store = SQLiteStore(path)
    await store.counts()
    await store.aclose()
    assert user_version(path) == schema.LATEST
    assert "fence" in dump_columns(path, "delivery")
    old = tmp_path / "old.sqlite"
    OldFile(old).create()
    upgraded = SQLiteStore(old)
    await upgraded.counts()
    await upgraded.aclose()
    assert dump(path) == dump(old)  # a 0.1.0 file, upgraded, has a new file's schema exactly


def dump(path: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    finally:
        db.close()


async def test_a_file_from_a_newer_dbnotify_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    OldFile(path).create()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {schema.LATEST + 1}")
    db.close()
    store = SQLiteStore(path)
    for operation in (store.counts(), store.history(), store.retry(dead=True)):
        with pytest.raises(OutboxError) as info:
            await operation
        assert str(info.value) == (
            f"the outbox {path} has schema version {schema.LATEST + 1}, newer than this dbnotify "
            f"knows ({schema.LATEST}); "
            "upgrade dbnotify, or point [outbox] path at another file"
        )
    await store.aclose()
    assert user_version(path) == schema.LATEST + 1


async def test_the_cli_says_so_for_a_newer_file(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    OldFile(outbox).create()
    db = sqlite3.connect(outbox)
    db.execute("PRAGMA user_version = 7")
    db.close()
    config = write_config(tmp_path / "dbnotify.toml", 2525, outbox)
    code, output = await dbnotify("outbox", "-c", str(config))
    assert (code, output.strip()) == (
        2,
        f"error: the outbox {outbox} has schema version 7, newer than this dbnotify knows "
        f"({schema.LATEST}); upgrade dbnotify, or point [outbox] path at another file",
    )


async def test_several_connections_opening_a_new_file_at_once_all_work(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    stores = [SQLiteStore(path) for _ in range(6)]
    try:
        counts = await asyncio.gather(*(s.counts() for s in stores))
    finally:
        for s in stores:
            await s.aclose()
    assert counts == [{"pending": 0, "due": 0, "dead": 0, "delivered": 0}] * 6
    assert user_version(path) == schema.LATEST


async def test_a_later_migration_applies_in_one_transaction_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machinery a second migration will use: the steps a file lacks run in order,
    and one that fails leaves the file as it was, at its old version."""
    path = tmp_path / "outbox.sqlite"
    store = SQLiteStore(path)
    await store.counts()  # the latest version
    await store.aclose()
    latest = schema.LATEST
    broken = schema.Migration(
        latest + 1,
        "0.3.0",
        "ALTER TABLE delivery ADD COLUMN priority INTEGER;\nSELECT * FROM nowhere;\n",
    )
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "LATEST", latest + 1)
    with pytest.raises(OutboxError, match="no such table: nowhere"):
        await store.counts()
    assert user_version(path) == latest
    assert "priority" not in dump_columns(path, "delivery")

    fixed = attrs.evolve(broken, script="ALTER TABLE delivery ADD COLUMN priority INTEGER;\n")
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS[:-1], fixed))
    assert (await store.counts())["pending"] == 0
    await store.aclose()
    assert user_version(path) == latest + 1
    assert "priority" in dump_columns(path, "delivery")


def dump_columns(path: Path, table: str) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def test_migration_scripts_split_into_whole_statements() -> None:
    assert len(schema.statements(schema.V1)) == 7
    with pytest.raises(ValueError, match="incomplete SQL statement"):
        schema.statements("CREATE TABLE x (a INTEGER")
