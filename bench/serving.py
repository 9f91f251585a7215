"""Scenario 7: events accepted per second by ``dbnotify serve`` over HTTP keep-alive,
beside the same events through the Python API, with the same outbox, in the same run.

What a host in another language pays for crossing the process boundary. Both sides
commit each event to a new SQLite outbox, its work in a writer process (the server's
default, named for the Python API), while the worker (in the server's process, or in the
bench's for the Python API) delivers to the SMTP sink; the figure is the time
from the first event sent to the last one accepted (202, or ``queued`` from
``notify()``), and it is valid only when the sink then receives every message.

The HTTP client is a small one on raw asyncio streams (:func:`_post_all`): one request
at a time on each of ``connections`` keep-alive connections, so that the client costs
little beside the server it measures (httpx would cost the bench process more than
the server spends per request). The Python API is driven the same way: ``connections``
callers, each awaiting ``notify()`` one event after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.coldstart import DBNOTIFY
from bench.report import Row, Scenario, first_reasons
from bench.workload import RECIPIENTS, backup_event, throughput_config
from dbnotify import Event, Notifier, Status

if TYPE_CHECKING:
    from bench.scenarios import Context
    from bench.servers import Server

HOST = "127.0.0.1"
TOKEN_ENV = "DBNOTIFY_BENCH_TOKEN"  # noqa: S105 - the name of the variable, not a token
WARM_UP = 10
"""Events sent before the clock starts, on each side: the server's first request (its
imports, the outbox's tables) and the Python API's are a start, not the burst."""
STALL = 30.0
"""Seconds without a new message at the sink after which delivery is given up on."""


@dataclasses.dataclass
class Accepted:
    """One side's burst: how long until every event was accepted, and what went wrong."""

    events: int
    seconds: float = 0.0
    accepted: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    connections: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    """HTTP only: each request's time from its first byte written to its reply read."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    def problems(self) -> list[str]:
        found = []
        if self.failures:
            found.append(f"{len(self.failures)} not accepted: {first_reasons(self.failures)}")
        elif self.accepted != self.events:
            found.append(f"{self.accepted} of {self.events} events accepted")
        return found


def _body(event: Event) -> bytes:
    """``POST /v1/events``'s JSON body for ``event``, as DBackup sends it."""
    return json.dumps({"type": event.type, "data": dict(event.data)}).encode()


def _request(port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """The status, the body, and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    if "content-length" not in headers:
        raise ConnectionError(f"a reply without Content-Length ({lines[0]})")
    body = await reader.readexactly(int(headers["content-length"]))
    return status, body, headers.get("connection", "").lower() != "close"


async def _post_all(port: int, token: str, bodies: Sequence[bytes], connections: int) -> Accepted:
    """Every body POSTed to ``/v1/events`` over ``connections`` keep-alive connections,
    each sending its next request when the last one's reply is in."""
    run = Accepted(len(bodies))
    order = iter(range(len(bodies)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        run.connections += 1
        try:
            for index in order:
                sent = time.perf_counter()
                writer.write(_request(port, token, bodies[index]))
                status, body, alive = await _reply(reader)
                run.latencies.append(time.perf_counter() - sent)
                if status == 202:
                    run.accepted += 1
                else:
                    run.failures.append(f"HTTP {status}: {body[:200].decode(errors='replace')}")
                if not alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                    run.connections += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    started = time.perf_counter()
    done = await asyncio.gather(*(connection() for _ in range(connections)), return_exceptions=True)
    run.seconds = time.perf_counter() - started
    run.failures += [f"{type(e).__name__}: {e}" for e in done if isinstance(e, BaseException)]
    return run


async def _notify_all(notifier: Notifier, events: Sequence[Event], callers: int) -> Accepted:
    """Every event through ``notifier.notify()``, ``callers`` at a time."""
    run = Accepted(len(events))
    order = iter(events)

    async def caller() -> None:
        for event in order:
            result = await notifier.notify(event)
            if all(r.status is Status.QUEUED for r in result.recipients) and result.recipients:
                run.accepted += 1
            else:
                reasons = [
                    str(r.reason) for r in result.recipients if r.status is not Status.QUEUED
                ]
                run.failures.append("not queued: " + ("; ".join(reasons) or "no recipient"))

    started = time.perf_counter()
    done = await asyncio.gather(*(caller() for _ in range(callers)), return_exceptions=True)
    run.seconds = time.perf_counter() - started
    run.failures += [f"{type(e).__name__}: {e}" for e in done if isinstance(e, BaseException)]
    return run


async def _messages(sink: Server) -> int:
    return int((await sink.stats()).get("messages", 0))


async def _delivered(sink: Server, before: int, expected: int) -> list[str]:
    """Wait until the sink has ``expected`` more messages (one per event accepted); a
    problem if it never does."""
    got, moved = 0, time.perf_counter()
    while True:
        now_got = await _messages(sink) - before
        if now_got >= expected:
            return [] if now_got == expected else [f"the sink received {now_got}, not {expected}"]
        if now_got != got:
            got, moved = now_got, time.perf_counter()
        elif time.perf_counter() - moved > STALL:
            return [
                f"the sink received {got} of {expected} messages (nothing more for {STALL:g} s)"
            ]
        await asyncio.sleep(0.1)


def _events(start: int, count: int) -> list[Event]:
    return [backup_event(i) for i in range(start, start + count)]


async def _python_api(sink: Server, folder: Path, events: int, callers: int) -> Accepted:
    # the server's writer, which is its default: a library's host names it to have it
    outbox = {"path": str(folder / "api.sqlite"), "writer": "process"}
    notifier = Notifier.from_config(throughput_config(sink.port, outbox=outbox))
    before = await _messages(sink)
    try:
        notifier.start()
        warm = await _notify_all(notifier, _events(10**6, WARM_UP), 1)
        run = await _notify_all(notifier, _events(0, events), callers)
        run.failures += [f"warm-up: {p}" for p in warm.problems()]
        run.failures += await _delivered(sink, before, run.accepted + warm.accepted)
    finally:
        await notifier.aclose()
        if notifier.outbox is not None:
            await notifier.outbox.aclose()
    return run


def _server_config(sink_port: int, outbox: Path) -> str:
    """The server's configuration file: the Python API's, plus a token for the bench."""
    import tomlkit

    config = throughput_config(sink_port, outbox=str(outbox))
    config["serve"] = {"tokens": {"bench": {"secret": {"env": TOKEN_ENV}, "scopes": ["send"]}}}
    return tomlkit.dumps(config)


async def _http(sink: Server, folder: Path, events: int, connections: int) -> Accepted:
    config = folder / "dbnotify.toml"
    config.write_text(_server_config(sink.port, folder / "http.sqlite"), encoding="utf-8")
    token = "bench-" + os.urandom(16).hex()
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(DBNOTIFY),
            "serve",
            "-c",
            str(config),
            "--listen",
            f"{HOST}:0",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, TOKEN_ENV: token},
        )
    try:
        port = await _port_of(process, log)
        before = await _messages(sink)
        warm = await _post_all(port, token, [_body(e) for e in _events(10**6, WARM_UP)], 1)
        run = await _post_all(port, token, [_body(e) for e in _events(0, events)], connections)
        run.failures += [f"warm-up: {p}" for p in warm.problems()]
        run.failures += await _delivered(sink, before, run.accepted + warm.accepted)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
    return run


async def _port_of(process: asyncio.subprocess.Process, log: Path) -> int:
    """The port ``dbnotify serve`` says it listens on, once it says so."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        found = re.search(r"serving on http://[^:]+:(\d+)", text)
        if found:
            return int(found[1])
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    text = await asyncio.to_thread(log.read_text, errors="replace")
    raise RuntimeError(f"dbnotify serve did not start: {text[-2000:]}")


def missing() -> str | None:
    """Why the scenario cannot run here, or ``None``."""
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("starlette") is None:
        return "the serve extra is not installed (pip install 'dbnotify[serve]')"
    if not DBNOTIFY.exists():
        return f"no dbnotify command beside the interpreter ({DBNOTIFY})"
    return None


async def http_events(ctx: Context) -> Scenario:
    o = ctx.options
    n = o.connections
    scenario = Scenario(
        7,
        f"Events accepted over HTTP: POST /v1/events on {n} keep-alive connections to "
        "`dbnotify serve` with a SQLite outbox, beside notify() on the same outbox",
    )
    label = f"events accepted over HTTP ({n} keep-alive connections)"
    baseline = f"Python API: Notifier.notify() with the same outbox, {n} callers"
    if (why := missing()) is not None:
        scenario.rows.append(Row(label, None, "events/s", skipped=why))
        return scenario
    sink, notes, _extensions = await ctx.servers.smtp()
    scenario.notes += [*notes, f"SMTP sink: {sink.description}"]
    api_runs: list[Accepted] = []
    http_runs: list[Accepted] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-", dir=o.outbox_dir) as name:
        for number in range(o.rounds):
            folder = Path(name) / f"round-{number}"
            folder.mkdir()
            ctx.progress(f"Python API, round {number + 1}: {o.events} events, {n} callers")
            api_runs.append(await _python_api(sink, folder, o.events, n))
            ctx.progress(f"HTTP, round {number + 1}: {o.events} events, {n} connections")
            http_runs.append(await _http(sink, folder, o.events, n))
    ratios = [h.rate / a.rate for h, a in zip(http_runs, api_runs, strict=True)]
    latencies = sorted(x for h in http_runs for x in h.latencies)
    median = " (median)" if o.rounds > 1 else ""
    problems = sorted({p for h in http_runs for p in h.problems()}) + sorted(
        {f"baseline: {p}" for a in api_runs for p in a.problems()}
    )
    scenario.rows += [
        Row(
            label + median,
            statistics.median(h.rate for h in http_runs),
            "events/s",
            statistics.median(a.rate for a in api_runs),
            baseline,
            problems=problems,
        ),
        Row(
            "HTTP as a share of the Python API" + (" (median of the rounds')" if median else ""),
            100 * statistics.median(ratios),
            "%",
            problems=problems,
        ),
    ]
    scenario.notes += [
        f"{o.events} backup_success events each side and round ({o.rounds} round"
        f"{'s' if o.rounds > 1 else ''}, the Python API first), each on a new outbox file in "
        f"{o.outbox_dir}, after {WARM_UP} untimed; the worker delivers meanwhile (to "
        f"{len(RECIPIENTS)} recipients a message), and every message must reach the sink",
        "HTTP against the Python API, each round: " + ", ".join(f"{100 * r:.0f} %" for r in ratios),
        f"HTTP: {sum(h.connections for h in http_runs) // len(http_runs)} connections a round "
        f"for {o.events} requests; a request's time to its 202, median "
        f"{1000 * statistics.median(latencies):.1f} ms, 99th percentile "
        f"{1000 * latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms",
        "client: raw asyncio streams in the bench's process, one request at a time a "
        "connection; server: `dbnotify serve` (uvicorn, one process, its worker inside)",
        "the outbox's SQLite work in a writer process on both sides: the server's default, "
        'and [outbox] writer = "process" for the Python API',
    ]
    return scenario
