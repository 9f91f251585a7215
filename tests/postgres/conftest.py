"""The proofs of the PostgreSQL outbox: several "hosts" on one queue, and their failures.

Each "host" is a process of its own: ``dbnotify worker -c FILE`` and small producer
scripts (``sys.executable -c``) that call :meth:`Notifier.notify`. They share one outbox,
a schema of its own per test on a real PostgreSQL (the session's ``postgres`` fixture, or
a cluster of the test's own when the test restarts it or changes its settings), and send
to a real aiosmtpd server on the test's own event loop, which counts what arrives: each
message's Message-ID names its notification, so a notification sent twice is seen.

Helpers are fixtures (the tests run in importlib mode: a test module cannot import this).
The test process only ever talks to PostgreSQL through psycopg's async API, so that the
SMTP server on the same loop keeps serving while the test looks.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from dbnotify.config.model import OutboxSettings
from dbnotify.secrets import Secret
from dbnotify.testing import postgres as pg
from dbnotify.testing.smtpd import LocalSMTPServer, Received

HOST = "127.0.0.1"
DBNOTIFY = str(Path(sys.executable).with_name("dbnotify"))
PASSWORD_ENV = "DBNOTIFY_TEST_PG_PASSWORD"
LEASE_ENV = "DBNOTIFY_TEST_LEASE"
MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^@>]+)@", re.IGNORECASE | re.MULTILINE)

PRODUCER = textwrap.dedent(
    """
    import asyncio, sys
    from dbnotify import Event, Notifier
    from dbnotify.errors import OutboxError

    async def main():
        config, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        batch, pause = int(sys.argv[4]), float(sys.argv[5])
        notifier = Notifier.from_config(config)

        async def one(index):
            event = Event("backup_failure", {"job_name": f"{prefix}-{index}", "error": "x"})
            try:
                result = await notifier.notify(event)
            except OutboxError as exc:  # what a host catches; anything else is a traceback
                print("raised", type(exc).__name__, " ".join(str(exc).split()), flush=True)
            else:
                print("ok", result.notification_id, flush=True)

        for start in range(0, count, batch):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + batch))))
            if pause:
                await asyncio.sleep(pause)
        await notifier.aclose()
        await notifier.outbox.aclose()
        print("done", flush=True)

    asyncio.run(main())
    """
)
"""``PRODUCER config count prefix batch pause``: ``count`` notifications, ``batch`` at a
time (a host's concurrent calls share a commit), ``pause`` seconds between batches; one
line per call: ``ok ID`` once committed, ``raised TYPE MESSAGE`` for an OutboxError."""

LEASED_WORKER = textwrap.dedent(
    f"""
    import os
    from dbnotify.outbox.worker import Worker
    Worker.lease = property(lambda self: float(os.environ[{LEASE_ENV!r}]))
    from dbnotify.cli import main
    main()
    """
)
"""``dbnotify worker`` itself, with its lease (``Worker.lease``, otherwise ``[dispatch]
deadline`` + 30 s) set by the environment: for the proofs that wait for a lease to end."""


def message_id(data: bytes) -> str:
    """The notification's id, from the Message-ID ``<ID@domain>``."""
    found = MESSAGE_ID.search(data)
    assert found is not None, "no Message-ID"
    return found[1].decode()


async def _until(
    condition: Callable[[], bool | Awaitable[bool]], within: float = 10.0, step: float = 0.05
) -> float:
    """Poll until ``condition`` holds; the seconds it took."""
    start = time.monotonic()
    end = start + within
    while True:
        met = condition()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return time.monotonic() - start
        assert time.monotonic() < end, f"condition not met within {within}s"
        await asyncio.sleep(step)


@pytest.fixture
def until() -> Callable[..., Awaitable[float]]:
    """``await until(lambda: ..., within=10)``: poll without blocking the loop."""
    return _until


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[pg.Server]:
    """A cluster of this test's own, for a test that restarts it or changes its settings."""
    try:
        server = pg.start()
    except pg.Unavailable as missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (CI is set: this test must run, not skip)", pytrace=False)
        pytest.skip(str(missing))
    with server:
        yield server


@attrs.define
class Outbox:
    """One test's outbox: a schema of its own on ``server``, reached at ``host``."""

    server: pg.Server
    folder: Path
    schema: str = attrs.field(factory=lambda: f"t_{uuid.uuid4().hex[:12]}")
    stores: list[Any] = attrs.field(factory=list)

    def url(self, host: str = HOST) -> str:
        return f"postgresql://{self.server.user}@{host}:{self.server.port}/{self.server.dbname}"

    def settings(self, **changes: Any) -> OutboxSettings:
        given: dict[str, Any] = {
            "url": self.url(),
            "password": Secret(self.server.password),
            "schema": self.schema,
        }
        return OutboxSettings(**{**given, **changes})

    def store(self, **changes: Any) -> Any:
        """A :class:`PostgresStore` on this outbox, in the test process (closed at the end)."""
        from dbnotify.outbox.postgres import PostgresStore

        store = PostgresStore(self.settings(**changes))
        self.stores.append(store)
        return store

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process on this outbox: the password, as a Secret's env."""
        return {**os.environ, PASSWORD_ENV: self.server.password}

    def config(
        self,
        smtp_port: int,
        *,
        name: str = "dbnotify.toml",
        smtp_host: str = HOST,
        db_host: str = HOST,
        deadline: float = 5,
        timeout: float = 2,
        pool_size: int = 4,
        channel: str = "",
        outbox: str = "",
        user: str | None = None,
    ) -> Path:
        """One email channel ``ops-mail``, an outbox on this schema with fast retries."""
        url = self.url(db_host)
        if user is not None:
            url = url.replace(f"//{self.server.user}@", f"//{user}@")
        path = self.folder / name
        path.write_text(
            f"""
[channels.ops-mail]
type = "email"
host = "{smtp_host}"
port = {smtp_port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com"]
timeout = 5
{channel}

[routing]
channels = ["ops-mail"]

[dispatch]
deadline = {deadline}

[outbox]
url = "{url}"
password = {{ env = "{PASSWORD_ENV}" }}
schema = "{self.schema}"
timeout = {timeout}
pool_size = {pool_size}
{outbox}

[outbox.retry.default]
first_delay = "0.2s"
max_delay = "1s"
attempts = 100
""",
            encoding="utf-8",
        )
        return path

    async def connect(self, host: str = HOST) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(
            self.url(host), password=self.server.password, autocommit=True
        )

    async def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement as the application's user, ``{s}`` the schema (quoted)."""
        conn = await self.connect()
        try:
            cursor = await conn.execute(query.format(s=f'"{self.schema}"'), params)
            return list(await cursor.fetchall()) if cursor.description is not None else []
        finally:
            await conn.close()

    async def value(self, query: str, params: Any = None) -> Any:
        (row,) = await self.rows(query, params)
        return row[0]

    async def leased_by(self, owner: str) -> int:
        """Deliveries ``owner`` holds: claimed, not yet recorded (its attempts in flight)."""
        return int(
            await self.value(
                "SELECT count(*) FROM {s}.delivery WHERE state = 'pending' AND lease_owner = %s",
                (owner,),
            )
        )

    async def pending(self) -> int:
        return int(await self.value("SELECT count(*) FROM {s}.delivery WHERE state = 'pending'"))

    async def drained(self) -> bool:
        """Nothing pending: every delivery's outcome is recorded."""
        return await self.pending() == 0


@pytest.fixture
async def outbox(postgres: pg.Server, tmp_path: Path) -> AsyncIterator[Outbox]:
    """A fresh schema on the session's PostgreSQL."""
    made = Outbox(postgres, tmp_path)
    yield made
    for store in made.stores:
        await store.aclose()


@pytest.fixture
async def own_outbox(own_postgres: pg.Server, tmp_path: Path) -> AsyncIterator[Outbox]:
    """A fresh schema on a cluster of the test's own (:func:`own_postgres`)."""
    made = Outbox(own_postgres, tmp_path)
    yield made
    for store in made.stores:
        await store.aclose()


# --- processes ----------------------------------------------------------------------------

OWNER = re.compile(r"^worker (\S+): \d+ pending, \d+ due now", re.MULTILINE)


@attrs.define
class Proc:
    """A "host": a process whose output goes to a file (no pipe to fill)."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    @property
    def owner(self) -> str | None:
        """A worker's lease owner, as it said when it started."""
        found = OWNER.search(self.output)
        return found[1] if found else None

    def signal(self, signum: int) -> None:
        if self.alive:
            self.proc.send_signal(signum)

    async def wait(self, within: float = 30) -> int:
        return await asyncio.wait_for(self.proc.wait(), within)

    async def stop(self, within: float = 20) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        self.signal(signal.SIGTERM)
        return await self.wait(within)

    def lines(self, first: str) -> list[str]:
        """A producer's lines that start with ``first`` (``ok``, ``raised``), the rest."""
        return [
            line.split(" ", 1)[1]
            for line in self.output.splitlines()
            if line.startswith(first + " ")
        ]


@attrs.define
class Hosts:
    """Starts the processes of a test; kills what is left at its end."""

    folder: Path
    started: list[Proc] = attrs.field(factory=list)

    async def spawn(
        self, name: str, argv: list[str], env: dict[str, str], netns: str | None = None
    ) -> Proc:
        log = self.folder / f"{name}-{len(self.started)}.log"
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]  # exec: the pid is the program's
        with log.open("wb") as handle:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=handle, env=env
            )
        started = Proc(name, proc, log)
        self.started.append(started)
        return started

    async def worker(
        self,
        outbox: Outbox,
        config: Path,
        *args: str,
        lease: float | None = None,
        netns: str | None = None,
        ready: bool = True,
        verbose: bool = False,
    ) -> Proc:
        """``dbnotify worker -c config``; with ``lease``, that lease instead of
        deadline + 30 s; ``verbose``: ``-v`` (warnings and each outcome, not only errors);
        once ``ready``, it has said its owner (it reached the outbox)."""
        env = outbox.env
        command = [*(["-v"] if verbose else []), "worker", "-c", str(config), *args]
        if lease is None:
            argv = [DBNOTIFY, *command]
        else:
            argv = [sys.executable, "-c", LEASED_WORKER, *command]
            env[LEASE_ENV] = str(lease)
        worker = await self.spawn("worker", argv, env, netns)
        if ready:
            await _until(lambda: worker.owner is not None or not worker.alive, within=30, step=0.02)
            assert worker.owner is not None, worker.output
        return worker

    async def producer(
        self,
        outbox: Outbox,
        config: Path,
        count: int,
        prefix: str,
        *,
        batch: int = 10,
        pause: float = 0.0,
    ) -> Proc:
        argv = [
            sys.executable, "-c", PRODUCER, str(config), str(count), prefix, str(batch),
            str(pause),
        ]  # fmt: skip
        return await self.spawn(f"producer-{prefix}", argv, outbox.env)


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[Hosts]:
    made = Hosts(tmp_path)
    yield made
    for proc in made.started:
        if proc.alive:
            proc.signal(signal.SIGCONT)  # a paused one would not die of SIGKILL at once either
            proc.signal(signal.SIGKILL)
            await proc.proc.wait()


# --- SMTP ---------------------------------------------------------------------------------


@attrs.define
class _Handler:
    server: Mailbox

    async def handle_RCPT(
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, _opts: Any
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        box = self.server
        if box.delay:
            await asyncio.sleep(box.delay)
        if box.holding:  # hold the reply (the message is not accepted yet) until release()
            box.held.append(message_id(content))
            await box.gate.wait()
        box.messages.append(Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), content))
        box.peers.append(str(session.peer[0]) if session.peer else "")
        box.arrived.set()
        return "250 Message accepted for delivery"


@attrs.define
class Mailbox(LocalSMTPServer):
    """A real aiosmtpd server that counts Message-IDs and, while ``holding``, keeps each
    message's final reply back until :meth:`release`: a slow server, for the test to act
    while a worker waits on it."""

    delay: float = 0.0
    """Seconds before each message's final reply: a server that takes its time."""
    holding: bool = False
    gate: asyncio.Event = attrs.field(factory=asyncio.Event)
    held: list[str] = attrs.field(factory=list)
    """Notification ids whose reply is (or was) held."""
    peers: list[str] = attrs.field(factory=list)
    """The client's address of each message in ``messages``."""

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self), hostname="dbnotify.test", decode_data=False, enable_SMTPUTF8=True
        )

    def hold(self) -> None:
        self.holding = True
        self.gate.clear()

    def release(self) -> None:
        """Let every held message through, and hold no more."""
        self.holding = False
        self.gate.set()

    def ids(self) -> list[str]:
        return [message_id(m.data) for m in self.messages]

    def copies(self) -> collections.Counter[str]:
        return collections.Counter(self.ids())

    def duplicates(self) -> int:
        return len(self.messages) - len(self.copies())


@pytest.fixture
async def mailbox() -> AsyncIterator[Callable[..., Awaitable[Mailbox]]]:
    """``box = await mailbox()`` (on 127.0.0.1, a port the OS picks; ``host=`` another
    local address); stopped at the end."""
    started: list[Mailbox] = []

    async def start(host: str = HOST) -> Mailbox:
        box = Mailbox(host=host)
        await box.start()
        started.append(box)
        return box

    yield start
    for box in started:
        box.release()
        await box.stop()


# --- network namespaces -------------------------------------------------------------------


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr.strip()}"


@attrs.frozen
class Link:
    """A veth pair between the host and the namespace: ``host`` / ``peer`` addresses."""

    device: str
    host: str
    peer: str

    def cut(self) -> None:
        """Take the host's end down: the namespace's packets on it go nowhere, and no
        reset comes back (a cable pulled, not a connection refused)."""
        _ip("link", "set", self.device, "down")


@attrs.frozen
class Namespace:
    """A network namespace with two links to the host: one to the database, one to SMTP."""

    name: str
    db: Link
    smtp: Link


def _netns_usable() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"dbnprobe{secrets.token_hex(3)}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A namespace ``dbn...`` with its own loopback, linked to the host by two veth
    pairs on two /30 subnets of 10.213.0.0/16 (the database's link and the SMTP link),
    so that a test can cut one and leave the other; all removed at the end."""
    why = _netns_usable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set: this test must run, not skip)", pytrace=False)
        pytest.skip(why)
    tag = secrets.token_hex(3)
    name = f"dbn{tag}"
    third = secrets.randbelow(250) + 1
    links = []
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        for index, kind in enumerate(("d", "s")):
            device, peer = f"dbn{kind}{tag}", f"dbn{kind}{tag}p"
            base = 4 * index
            host, inner = f"10.213.{third}.{base + 1}", f"10.213.{third}.{base + 2}"
            _ip("link", "add", device, "type", "veth", "peer", "name", peer)
            links.append(device)
            _ip("link", "set", peer, "netns", name)
            _ip("addr", "add", f"{host}/30", "dev", device)
            _ip("link", "set", device, "up")
            _ip("-n", name, "addr", "add", f"{inner}/30", "dev", peer)
            _ip("-n", name, "link", "set", peer, "up")
        yield Namespace(
            name,
            Link(links[0], f"10.213.{third}.1", f"10.213.{third}.2"),
            Link(links[1], f"10.213.{third}.5", f"10.213.{third}.6"),
        )
    finally:
        for device in links:
            subprocess.run(["ip", "link", "del", device], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def listen_also_on(server: pg.Server, address: str) -> None:
    """Let ``server`` take connections on ``address`` too (restarts it)."""
    with (server.data_dir / "dbnotify.conf").open("a", encoding="utf-8") as conf:
        conf.write(f"listen_addresses = '127.0.0.1,{address}'\n")
    with (server.data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write(f"host all all {address.rpartition('.')[0]}.0/24 scram-sha-256\n")
    server.restart()


@pytest.fixture
def postgres_on() -> Callable[[pg.Server, str], None]:
    """``postgres_on(server, address)``: the server listens on that address too."""
    return listen_also_on
