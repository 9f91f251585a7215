"""The durable outbox across processes: ``dbnotify worker`` subprocesses, real SMTP servers.

The SMTP servers run on the test's own event loop (aiosmtpd's :class:`LocalSMTPServer`,
or a raw scripted one for faults aiosmtpd cannot produce); the workers and senders are
real processes started with asyncio's subprocess API, so the servers keep serving while
the test waits. Helpers are fixtures: test modules (importlib mode) cannot import this.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme

from dbnotify.outbox.sqlite import SQLiteStore
from dbnotify.testing.scripted import ScriptedSMTPServer
from dbnotify.testing.smtpd import LocalSMTPServer

HOST = "127.0.0.1"
DBNOTIFY = str(Path(sys.executable).with_name("dbnotify"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def message_id(data: bytes) -> str:
    found = MESSAGE_ID.search(data)
    assert found is not None, "no Message-ID"
    return found[1].decode()


# --- waiting and measuring ----------------------------------------------------------------


async def _until(
    condition: Callable[[], bool | Awaitable[bool]], within: float = 10.0, step: float = 0.02
) -> None:
    end = time.monotonic() + within
    while True:
        met = condition()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return
        assert time.monotonic() < end, f"condition not met within {within}s"
        await asyncio.sleep(step)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """``await until(lambda: ..., within=10)``: poll without blocking the loop; the
    condition may be a coroutine (``lambda: files.counts(pending=0)``)."""
    return _until


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (no psutil)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # after "pid (comm)": state is field 3, utime 14 and stime 15 (1-based)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@pytest.fixture
def cpu_seconds() -> Callable[[int], float]:
    return _cpu_seconds


# --- configuration ------------------------------------------------------------------------


@attrs.define
class Files:
    """Configuration files in ``folder``, all naming the outbox at ``outbox``."""

    folder: Path
    outbox: Path = attrs.field()
    opened: dict[Path, SQLiteStore] = attrs.field(factory=dict)

    @outbox.default
    def _outbox(self) -> Path:
        return self.folder / "outbox.sqlite"

    def config(
        self,
        port: int,
        *,
        name: str = "dbnotify.toml",
        to: tuple[str, ...] = ("ops@example.com",),
        first_delay: str = "0.2s",
        max_delay: str = "1s",
        attempts: int = 100,
        deadline: float = 5,
        busy_timeout: float = 5,
        host: str = HOST,
        security: str = "none",
        timeout: float = 2,
        channel: str = "",
        extra: str = "",
        writer: str | None = "thread",
    ) -> Path:
        """One email channel ``ops-mail`` to host (127.0.0.1):port, an outbox with fast
        retries; ``channel`` adds lines to the channel's table, ``extra`` to the file;
        ``writer=None`` names no writer (the program's choice)."""
        path = self.folder / name
        quoted = ", ".join(f'"{t}"' for t in to)
        writer_line = f'writer = "{writer}"' if writer is not None else ""
        path.write_text(
            f"""
[channels.ops-mail]
type = "email"
host = "{host}"
port = {port}
security = "{security}"
from = "DBackup <dbackup@example.com>"
to = [{quoted}]
timeout = {timeout}
{channel}

[routing]
channels = ["ops-mail"]

[dispatch]
deadline = {deadline}

[outbox]
path = "{self.outbox}"
busy_timeout = {busy_timeout}
{writer_line}

[outbox.retry.default]
first_delay = "{first_delay}"
max_delay = "{max_delay}"
attempts = {attempts}
{extra}
""",
            encoding="utf-8",
        )
        return path

    def store(self) -> SQLiteStore:
        """The outbox, opened as another process would: one connection per file, closed
        at the test's end."""
        if self.outbox not in self.opened:
            self.opened[self.outbox] = SQLiteStore(self.outbox)
        return self.opened[self.outbox]

    async def counts(self, **expected: int) -> bool:
        """Whether the outbox's counts are these, e.g. ``pending=0``."""
        counts = await self.store().counts()
        return all(counts[key] == value for key, value in expected.items())

    async def parked(self, channel: str) -> bool:
        return channel in await self.store().parked()


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Files]:
    made = Files(tmp_path)
    yield made
    for store in made.opened.values():
        store.database.close()


# --- processes ----------------------------------------------------------------------------


@attrs.define
class Worker:
    """A ``dbnotify worker`` process; its stderr goes to a file (no pipe to fill)."""

    proc: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self, within: float = 10) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), within)

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """``worker = await start_worker(config, "--drain")``; killed at the end if still alive."""
    started: list[Worker] = []

    async def start(config: Path, *args: str) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as handle:
            proc = await asyncio.create_subprocess_exec(
                DBNOTIFY,
                "worker",
                "-c",
                str(config),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=handle,
                stderr=handle,
            )
        worker = Worker(proc, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.returncode is None:
            worker.kill()
            await worker.proc.wait()


@attrs.frozen
class Run:
    code: int
    out: str
    err: str


async def _run(*args: str, within: float = 60) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def dbnotify() -> Callable[..., Awaitable[Run]]:
    """``await dbnotify("send", "backup_failure", ...)``: the installed command."""

    async def run(*args: str, within: float = 60) -> Run:
        return await _run(DBNOTIFY, *args, within=within)

    return run


@pytest.fixture
def python() -> Callable[..., Awaitable[Run]]:
    """``await python(source, *argv)``: this interpreter, as another process."""

    async def run(source: str, *argv: str, within: float = 60) -> Run:
        return await _run(sys.executable, "-c", source, *argv, within=within)

    return run


# --- servers ------------------------------------------------------------------------------


@attrs.define
class PortSMTPServer(LocalSMTPServer):
    """A :class:`LocalSMTPServer` on a port chosen beforehand (a server that comes back)."""

    async def start(self) -> PortSMTPServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        return self

    def message_ids(self) -> list[str]:
        return [message_id(m.data) for m in self.messages]


@pytest.fixture
async def smtp_on() -> AsyncIterator[Callable[..., Awaitable[PortSMTPServer]]]:
    """``server = await smtp_on(port)`` (0: any); stopped at the end."""
    started: list[PortSMTPServer] = []

    async def start(port: int = 0, **options: Any) -> PortSMTPServer:
        server = await PortSMTPServer(port=port, **options).start()
        if not port:
            assert server._server is not None
            server.port = server._server.sockets[0].getsockname()[1]
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@attrs.frozen
class TLS:
    server_context: ssl.SSLContext
    ca_file: str


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TLS(context, str(ca_file))


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Awaitable[ScriptedSMTPServer]]]:
    """``server = await scripted(greeting="421 ...")``: a :class:`ScriptedSMTPServer`
    that misbehaves until the test calls ``server.heal()``; stopped at the end."""
    started: list[ScriptedSMTPServer] = []

    async def start(**options: Any) -> ScriptedSMTPServer:
        server = await ScriptedSMTPServer(host=HOST, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (yet)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
