"""Starting and stopping the bench's servers, each in a process of its own.

- the SMTP sink: Postfix's ``smtp-sink`` (C) where installed, else the aiosmtpd sink of
  :mod:`bench.sinks`; either way it counts the messages it received, so the bench can
  check that they really arrived;
- the HTTP sink for the webhook channel;
- latency proxies (:mod:`bench.proxy`) in front of them.

Everything listens on 127.0.0.1 only. Every process started here is stopped when the
bench ends, also on Ctrl-C or an exception (and, for our own Python servers, also when
the bench is killed: they exit when their standard input closes).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal, Protocol

from bench.machine import ROOT

SinkChoice = Literal["auto", "smtp-sink", "aiosmtpd"]

_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
SMTP_SINK = shutil.which("smtp-sink", path=_SEARCH)
SMTP_SOURCE = shutil.which("smtp-source", path=_SEARCH)

_LIVE: dict[int, str] = {}
"""pid -> what it is: every process started and not yet stopped."""


@atexit.register
def _kill_leftovers() -> None:
    for pid in list(_LIVE):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        _LIVE.pop(pid, None)


class ServerError(RuntimeError):
    """A server did not start."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (for ``smtp-sink``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _stop(process: asyncio.subprocess.Process, *, polite: bool = False) -> None:
    try:
        if process.returncode is None:
            if polite and process.stdin is not None:
                process.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), timeout=3)
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout=3)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    except ProcessLookupError:
        pass
    finally:
        _LIVE.pop(process.pid, None)


class Server(Protocol):
    port: int
    description: str

    async def stats(self) -> dict[str, Any]: ...
    async def stop(self) -> None: ...


class ChildServer:
    """A :mod:`bench.child` process: a sink or a proxy."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, description: str) -> None:
        self.process = process
        self.port = port
        self.description = description
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, description: str, kind: str, *args: str) -> ChildServer:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.child",
            kind,
            *args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        _LIVE[process.pid] = description
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY "):
            await _stop(process)
            raise ServerError(f"{description} did not start (exit status {process.returncode})")
        return cls(process, int(line.split()[1]), description)

    async def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        async with self._lock:
            self.process.stdin.write(b"stats\n")
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout=30)
        if not line:
            raise ServerError(f"{self.description} has stopped")
        result: dict[str, Any] = json.loads(line)
        return result

    async def stop(self) -> None:
        await _stop(self.process, polite=True)


class PostfixSink:
    """Postfix's ``smtp-sink -c``: its running counters are read from its output."""

    _MESSAGES = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")

    def __init__(self, process: asyncio.subprocess.Process, port: int, output: Path) -> None:
        self.process = process
        self.port = port
        self.output = output
        self.description = f"Postfix smtp-sink ({SMTP_SINK})"

    @classmethod
    async def start(cls) -> PostfixSink:
        assert SMTP_SINK is not None
        # it must drop root, to a user that exists
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        if user:
            pwd.getpwnam("nobody")  # KeyError: no such user
        last = ""
        for _attempt in range(3):  # the port may be taken between looking and binding
            port = free_port()
            fd, name = tempfile.mkstemp(prefix="bench-smtp-sink-", suffix=".out")
            output = Path(name)
            with os.fdopen(fd, "wb") as out:
                process = await asyncio.create_subprocess_exec(
                    SMTP_SINK,
                    "-c",
                    *user,
                    f"127.0.0.1:{port}",
                    "1000",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
            _LIVE[process.pid] = "smtp-sink"
            sink = cls(process, port, output)
            if await sink._ready():
                return sink
            await sink.stop()
            last = (await asyncio.to_thread(output.read_bytes)).decode(errors="replace").strip()
        raise ServerError(f"smtp-sink did not start: {last or 'no output'}")

    async def _ready(self) -> bool:
        for _ in range(100):
            if self.process.returncode is not None:
                return False
            try:
                await greeting_and_extensions(self.port)
            except OSError:
                await asyncio.sleep(0.05)
            else:
                return True
        return False

    async def stats(self) -> dict[str, Any]:
        with self.output.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            found = self._MESSAGES.findall(f.read())
        if not found:
            return {"messages": 0, "sessions": 0}
        sess, _quit, mesg = found[-1]
        return {"messages": int(mesg), "sessions": int(sess)}

    async def stop(self) -> None:
        await _stop(self.process)
        with contextlib.suppress(OSError):
            self.output.unlink()


async def greeting_and_extensions(port: int, host: str = "127.0.0.1") -> list[str]:
    """Connect, read the greeting, EHLO, QUIT: the extensions the server offers."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=5)
    try:

        async def reply() -> list[str]:
            lines = []
            while True:
                line = (await asyncio.wait_for(reader.readline(), timeout=5)).decode()
                if len(line) < 4:
                    raise ConnectionError(f"unexpected reply {line!r}")
                lines.append(line[4:].strip())
                if line[3] != "-":
                    return lines

        await reply()
        writer.write(b"EHLO bench.example.com\r\n")
        extensions = (await reply())[1:]
        writer.write(b"QUIT\r\n")
        await reply()
        return [e.split()[0].upper() for e in extensions if e]
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def start_smtp_sink(choice: SinkChoice) -> tuple[Server, list[str]]:
    """The SMTP sink, and why it is that one (a note for the output)."""
    notes: list[str] = []
    if choice in ("auto", "smtp-sink"):
        if SMTP_SINK is None:
            if choice == "smtp-sink":
                raise ServerError("smtp-sink is not installed (apt-get install postfix)")
            notes.append("Postfix smtp-sink not installed: the aiosmtpd sink is used")
        else:
            try:
                return await PostfixSink.start(), notes
            except (ServerError, KeyError) as exc:
                if choice == "smtp-sink":
                    raise ServerError(f"smtp-sink: {exc}") from exc
                notes.append(f"smtp-sink did not start ({exc}): the aiosmtpd sink is used")
    sink = await ChildServer.start("aiosmtpd sink (bench.sinks, own process)", "smtp")
    return sink, notes


async def start_http_sink() -> ChildServer:
    return await ChildServer.start("HTTP sink (bench.sinks, own process)", "http")


async def start_proxy(port: int, delay: float) -> ChildServer:
    return await ChildServer.start(
        f"latency proxy, {delay * 1000:g} ms each way, to port {port}",
        "proxy",
        "--target",
        f"127.0.0.1:{port}",
        "--delay",
        str(delay),
    )


class Servers:
    """Every server the bench started, stopped together (``async with Servers() as s``)."""

    def __init__(self, sink_choice: SinkChoice) -> None:
        self.sink_choice = sink_choice
        self._smtp: tuple[Server, list[str], list[str]] | None = None
        self._http: ChildServer | None = None
        self._started: list[Server] = []

    async def smtp(self) -> tuple[Server, list[str], list[str]]:
        """The SMTP sink (started once), notes about it, and the extensions it offers."""
        if self._smtp is None:
            sink, notes = await start_smtp_sink(self.sink_choice)
            self._started.append(sink)
            self._smtp = (sink, notes, await greeting_and_extensions(sink.port))
        return self._smtp

    async def http(self) -> ChildServer:
        if self._http is None:
            self._http = await start_http_sink()
            self._started.append(self._http)
        return self._http

    async def proxy(self, port: int, delay: float) -> ChildServer:
        proxy = await start_proxy(port, delay)
        self._started.append(proxy)
        return proxy

    async def stop(self, server: Server) -> None:
        if server in self._started:
            self._started.remove(server)
        await server.stop()

    async def __aenter__(self) -> Servers:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        started, self._started = self._started, []
        await asyncio.gather(*(s.stop() for s in reversed(started)), return_exceptions=True)
