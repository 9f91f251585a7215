"""The scenarios of issues 6 and 16, each beside a baseline measured in the same run."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bench import baselines, buildcost, coldstart, pipeline, queues, serving
from bench import postgres as pg
from bench.report import Row, Scenario, Target, first_reasons
from bench.servers import SMTP_SOURCE, ChildServer, Servers, SinkChoice
from bench.servers import Server as AnyServer
from bench.workload import (
    RECIPIENTS,
    Content,
    backup_event,
    email_only_config,
    fanout_config,
    login_event,
    prebuilt_message,
    throughput_config,
)
from dbnotify import DispatchResult, Event, Notifier, Status
from dbnotify.outbox.defaults import POSTGRES_CONCURRENCY
from dbnotify.results import Target as DeliveryTarget
from dbnotify_email import pool as email_pool

T = TypeVar("T")
HOST = "127.0.0.1"


@dataclasses.dataclass
class Options:
    events: int = 2000
    """Scenario 1: events (each one email to 3 recipients)."""
    rounds: int = 3
    """Scenario 1: rounds of naive, direct and durable, back to back; medians reported.
    Scenario 2: rounds of direct with two round trips a message and with one.
    One round's share of durable to direct moves by ±10 points on a shared machine."""
    proxy_events: int = 400
    """Scenario 2: events through the latency proxy."""
    repeats: int = 9
    """Scenario 3: timed repeats (after one warm-up)."""
    starts: int = 10
    """Scenario 4: timed starts (after one warm-up)."""
    build_messages: int = 500
    build_repeats: int = 9
    """Scenario 5: notifications per repeat, and repeats."""
    burst: int = 100_000
    """Scenario 6: notifications in the burst; memory is read after a tenth, half, all."""
    sink: SinkChoice = "auto"
    outbox_dir: Path = dataclasses.field(default_factory=lambda: Path(tempfile.gettempdir()))
    connections: int = 8
    postgres: bool = True
    """Scenario 1: durable mode on PostgreSQL too (skipped where it is not installed)."""
    pg_workers: int = 3
    """Scenario 1: worker processes in the second PostgreSQL row."""
    delay: float = 0.025
    """Seconds each way through the latency proxy."""


@dataclasses.dataclass
class Context:
    options: Options
    servers: Servers
    content: Content

    @staticmethod
    def progress(text: str) -> None:
        print(f"   ... {text}", file=sys.stderr, flush=True)


async def _count(server: AnyServer, key: str) -> int:
    return int((await server.stats()).get(key, 0))


async def _arrived(
    server: AnyServer, key: str, before: int, expected: int, what: str
) -> tuple[int, list[str]]:
    """How many ``key`` the server counted since ``before`` (waiting up to 3 s for the
    expected number: a counter may lag the client's last reply), and a problem if short."""
    deadline = time.monotonic() + 3
    while True:
        got = await _count(server, key) - before
        if got >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    if got != expected:
        return got, [f"the sink received {got} {what}, expected {expected}"]
    return got, []


async def _sent(
    sink: AnyServer, messages: int, run: Callable[[], Awaitable[T]]
) -> tuple[T, list[str]]:
    """Run a batch and check that the sink received exactly ``messages`` messages."""
    before = await _count(sink, "messages")
    result = await run()
    _got, problems = await _arrived(sink, "messages", before, messages, "messages")
    return result, problems


def _baseline_problems(outcome: baselines.Outcome, sink_problems: list[str]) -> list[str]:
    return [f"baseline: {p}" for p in (*outcome.problems(), *sink_problems)]


async def _sink(ctx: Context, scenario: Scenario) -> AnyServer:
    sink, notes, extensions = await ctx.servers.smtp()
    pipelining = "offers" if "PIPELINING" in extensions else "does not offer"
    scenario.notes += [*notes, f"SMTP sink: {sink.description}; it {pipelining} PIPELINING"]
    return sink


@dataclasses.dataclass
class Traffic:
    """What a latency proxy saw during one run."""

    connections: int = 0
    writes: int = 0
    """Chunks the client sent: one per round trip it waited for, roughly."""


async def _through(proxy: ChildServer | None, run: Callable[[], Awaitable[T]]) -> tuple[T, Traffic]:
    """Run, and what the proxy (if any) saw meanwhile."""
    if proxy is None:
        return await run(), Traffic()
    before = await proxy.stats()
    result = await run()
    after = await proxy.stats()
    return result, Traffic(
        after["connections"] - before["connections"],
        after["chunks"]["client_to_server"] - before["chunks"]["client_to_server"],
    )


@dataclasses.dataclass
class Throughput:
    direct: Row
    durable: Row
    direct_run: pipeline.PipelineRun
    durable_run: pipeline.PipelineRun
    traffic: dict[str, Traffic]
    writer: Row | None = None
    """Durable mode with ``[outbox] writer = "process"`` (loopback only)."""
    writer_run: pipeline.PipelineRun | None = None


async def _throughput(
    ctx: Context,
    scenario: Scenario,
    sink: AnyServer,
    events: int,
    proxy: ChildServer | None,
    label: str = "",
) -> Throughput:
    """The naive baseline, then dbnotify direct and durable; through ``proxy`` if given."""
    o = ctx.options
    port = proxy.port if proxy is not None else sink.port
    traffic: dict[str, Traffic] = {}
    ctx.progress(f"naive baseline: {events} messages over {o.connections} connections")
    (naive, naive_sink), traffic["naive"] = await _through(
        proxy,
        lambda: _sent(
            sink, events, lambda: baselines.naive(HOST, port, events, ctx.content, o.connections)
        ),
    )
    base = _baseline_problems(naive, naive_sink)
    ctx.progress(f"dbnotify, direct mode: {events} events")
    (direct, direct_sink), traffic["direct"] = await _through(
        proxy,
        lambda: _sent(
            sink,
            events,
            lambda: pipeline.direct(
                throughput_config(port), [backup_event(i) for i in range(events)], len(RECIPIENTS)
            ),
        ),
    )
    ctx.progress(f"dbnotify, durable mode: {events} events")
    (durable, durable_sink), traffic["durable"] = await _through(
        proxy,
        lambda: _sent(
            sink,
            events,
            lambda: pipeline.durable(
                lambda path: throughput_config(port, outbox=path),
                [backup_event(i) for i in range(events)],
                len(RECIPIENTS),
                o.outbox_dir,
            ),
        ),
    )
    baseline = f"naive EmailMessage + aiosmtplib send_message, {o.connections} connections"
    writer: tuple[pipeline.PipelineRun, list[str]] | None = None
    if proxy is None:
        ctx.progress(f"dbnotify, durable mode with a writer process: {events} events")
        writer = await _sent(
            sink,
            events,
            lambda: pipeline.durable(
                lambda path: throughput_config(port, outbox={"path": path, "writer": "process"}),
                [backup_event(i) for i in range(events)],
                len(RECIPIENTS),
                o.outbox_dir,
            ),
        )
    direct_row = Row(
        "direct mode (Notifier → SMTP)",
        direct.rate,
        "msgs/s",
        naive.rate,
        baseline,
        problems=[*direct.problems(), *direct_sink, *base],
    )
    durable_row = Row(
        "durable mode (outbox + worker)",
        durable.rate,
        "msgs/s",
        naive.rate,
        baseline,
        problems=[*durable.problems(), *durable_sink, *base],
    )
    scenario.notes.append(
        f"{label}durable mode: all {events} events committed to the outbox after "
        f"{durable.details.get('committed_s', float('nan')):.2f} s; all delivered after "
        f"{durable.seconds:.2f} s (the outbox's time of its last record; seen by polling "
        f"every {pipeline.POLL:g} s after {durable.details.get('polled_s', float('nan')):.2f} s)"
    )
    if writer is None:
        return Throughput(direct_row, durable_row, direct, durable, traffic)
    writer_run, writer_sink = writer
    writer_row = Row(
        'durable mode, [outbox] writer = "process"',
        writer_run.rate,
        "msgs/s",
        naive.rate,
        baseline,
        problems=[*writer_run.problems(), *writer_sink, *base],
    )
    return Throughput(direct_row, durable_row, direct, durable, traffic, writer_row, writer_run)


def _cpu_note(rounds: list[Throughput], on_postgres: list[PostgresRound]) -> str:
    """This process's CPU a notification in each mode, medians of the rounds: the loop is
    busy in every mode, so a durable mode's share of direct mode follows the ratio of
    the two (a writer process's own CPU is its own, on the other core)."""
    direct = statistics.median(r.direct_run.cpu_per_event for r in rounds)
    writer = [r.writer_run for r in rounds if r.writer_run is not None]
    modes = [
        ("durable", [r.durable_run for r in rounds]),
        ("durable with a writer process", writer),
        ("on PostgreSQL, 1 worker", [m.one for m in on_postgres]),
    ]
    said = [f"direct {direct:,.0f} µs"]
    for name, runs in modes:
        if runs:
            cpu = statistics.median(run.cpu_per_event for run in runs)
            said.append(f"{name} {cpu:,.0f} µs (direct's is {100 * direct / cpu:.0f} % of it)")
    each = "; ".join(said)
    return f"this process's CPU a notification while clocked (medians of the rounds): {each}"


def _share_rows(
    label: str, shares: list[float], durable: Row, direct: Row, median: str
) -> list[Row]:
    """Issue 16's target 2 for one durable mode: the median of the rounds' shares of
    direct mode, and the lowest round."""
    problems = sorted(set(direct.problems + durable.problems))
    return [
        Row(
            f"{label} as a share of direct{median}",
            statistics.median(shares),
            "%",
            target=Target(">=", 85),
            problems=problems,
        ),
        Row(
            f"{label} as a share of direct, lowest round",
            min(shares),
            "%",
            target=Target(">=", 75),
            problems=problems,
        ),
    ]


def _median_row(rows: list[Row]) -> Row:
    """The rounds' median figure and median baseline; every round's problems."""
    first = rows[0]
    return dataclasses.replace(
        first,
        value=statistics.median(r.value or 0.0 for r in rows),
        baseline=statistics.median(r.baseline or 0.0 for r in rows),
        problems=sorted({p for r in rows for p in r.problems}),
    )


@dataclasses.dataclass
class PostgresRound:
    one: pipeline.PipelineRun
    one_sink: list[str]
    many: pipeline.PipelineRun
    many_sink: list[str]
    words: list[str]
    """What each worker process said last (its attempts)."""


async def _on_postgres(
    ctx: Context, sink: AnyServer, cluster: pg.Cluster, events: int, workers: int
) -> tuple[pipeline.PipelineRun, list[str], list[str]]:
    """One durable run on an empty outbox (a new schema): with one worker, the
    Notifier's own; with more, worker processes draining the burst the Notifier (no
    worker of its own) commits. The run, the sink's problems, the workers' last words."""
    schema = cluster.schema()
    config = throughput_config(sink.port, outbox=cluster.outbox(schema))
    batch = [backup_event(i) for i in range(events)]
    try:
        if workers == 1:
            ctx.progress(f"dbnotify, durable mode on PostgreSQL, 1 worker: {events} events")
            run, problems = await _sent(
                sink,
                events,
                lambda: pipeline.outbox_run(config, batch, len(RECIPIENTS), setup=pipeline.warm),
            )
            return run, problems, []
        ctx.progress(
            f"dbnotify, durable mode on PostgreSQL, {workers} worker processes: {events} events"
        )
        async with pg.workers(config, workers) as words:
            run, problems = await _sent(
                sink,
                events,
                lambda: pipeline.outbox_run(
                    config, batch, len(RECIPIENTS), worker=False, setup=pipeline.warm
                ),
            )
        return run, problems, words
    finally:
        await cluster.drop(schema)


async def _postgres_round(
    ctx: Context, sink: AnyServer, cluster: pg.Cluster, events: int
) -> PostgresRound:
    one, one_sink, _ = await _on_postgres(ctx, sink, cluster, events, 1)
    many, many_sink, words = await _on_postgres(ctx, sink, cluster, events, ctx.options.pg_workers)
    return PostgresRound(one, one_sink, many, many_sink, words)


def _postgres_rows(
    ctx: Context,
    scenario: Scenario,
    cluster: pg.Cluster,
    rounds: list[Throughput],
    measured: list[PostgresRound],
) -> None:
    o = ctx.options
    direct = _median_row([r.direct for r in rounds])
    one_label = "durable mode on PostgreSQL, 1 worker (in process)"
    many_label = f"durable mode on PostgreSQL, {o.pg_workers} worker processes"
    median = " (median)" if len(measured) > 1 else ""
    labels = [
        (one_label, "msgs/s"),
        ("PostgreSQL, 1 worker, as a share of direct" + median, "%"),
        (many_label, "msgs/s"),
        (f"PostgreSQL, {o.pg_workers} workers, as a share of direct" + median, "%"),
        (f"PostgreSQL, {o.pg_workers} workers against 1 worker" + median, "%"),
    ]
    targets = [None, Target(">=", 50), None, None, Target(">=", 100)]
    if not measured:
        reason = cluster.skipped or "not asked for"
        scenario.rows += [
            Row(label, None, unit, target=target, skipped=reason)
            for (label, unit), target in zip(labels, targets, strict=True)
        ]
        return
    base = direct.baseline_label
    problems = {
        "one": [f"{one_label}: {p}" for m in measured for p in (*m.one.problems(), *m.one_sink)],
        "many": [
            f"{many_label}: {p}" for m in measured for p in (*m.many.problems(), *m.many_sink)
        ],
    }
    shares_one = [
        100 * m.one.rate / r.direct_run.rate for m, r in zip(measured, rounds, strict=True)
    ]
    shares_many = [
        100 * m.many.rate / r.direct_run.rate for m, r in zip(measured, rounds, strict=True)
    ]
    against = [100 * m.many.rate / m.one.rate for m in measured]
    both = sorted(set(problems["one"] + problems["many"] + direct.problems))
    scenario.rows += [
        Row(
            one_label,
            statistics.median(m.one.rate for m in measured),
            "msgs/s",
            direct.baseline,
            base,
            problems=sorted(set(problems["one"])),
        ),
        Row(
            labels[1][0],
            statistics.median(shares_one),
            "%",
            target=targets[1],
            problems=sorted(set(problems["one"] + direct.problems)),
        ),
        Row(
            many_label,
            statistics.median(m.many.rate for m in measured),
            "msgs/s",
            direct.baseline,
            base,
            problems=sorted(set(problems["many"])),
        ),
        Row(
            labels[3][0],
            statistics.median(shares_many),
            "%",
            problems=sorted(set(problems["many"] + direct.problems)),
        ),
        Row(labels[4][0], statistics.median(against), "%", target=targets[4], problems=both),
    ]
    scenario.notes += [
        f"PostgreSQL: {cluster.description}; the outbox's defaults (pool_size 4, LISTEN on); "
        "each run on a new schema, its pool opened and tables created before the clock "
        "starts",
        f"PostgreSQL, {o.pg_workers} worker processes: `dbnotify worker` each (worker "
        f"concurrency {POSTGRES_CONCURRENCY}, email max_connections 8 each), started and ready "
        "before the burst; the bench's Notifier (no worker of its own) commits it; timed "
        "until the last outcome recorded",
        "PostgreSQL, each round's share of direct: 1 worker "
        + ", ".join(f"{x:.1f} %" for x in shares_one)
        + f"; {o.pg_workers} workers "
        + ", ".join(f"{x:.1f} %" for x in shares_many)
        + f"; {o.pg_workers} against 1: "
        + ", ".join(f"{x:.0f} %" for x in against),
        "PostgreSQL worker processes said at the end (last round): "
        + "; ".join(measured[-1].words),
    ]


async def _procrastinate(
    ctx: Context, sink: AnyServer, cluster: pg.Cluster, events: int
) -> tuple[baselines.Outcome, list[str], float] | str:
    """procrastinate doing the same sends on the same PostgreSQL, once, after the
    rounds; or why not."""
    if cluster.server is None:
        return cluster.skipped or "no PostgreSQL"
    if (why := queues.missing()) is not None:
        return why
    ctx.progress(f"reference: procrastinate on the same PostgreSQL: {events} jobs")
    runner = queues.Procrastinate(cluster.server.url, cluster.server.password)
    content = ctx.content
    (outcome, committed), problems = await _sent(
        sink, events, lambda: runner.run(HOST, sink.port, events, content)
    )
    return outcome, problems, committed


def _procrastinate_row(
    scenario: Scenario,
    reference: tuple[baselines.Outcome, list[str], float] | str,
    direct: Row,
    direct_rates: list[float],
) -> None:
    label = (
        f"reference: procrastinate on the same PostgreSQL (1 worker, concurrency "
        f"{queues.CONCURRENCY})"
    )
    if isinstance(reference, str):
        scenario.rows.append(Row(label, None, "msgs/s", reference=True, skipped=reference))
        return
    outcome, problems, committed = reference
    scenario.rows.append(
        Row(
            label,
            outcome.rate,
            "msgs/s",
            direct.baseline,
            direct.baseline_label,
            problems=[*outcome.problems(), *problems],
            reference=True,
        )
    )
    scenario.notes.append(
        f"procrastinate {queues.version()}: one job per email (gather of one defer_async() "
        f"each), one worker in this process, {queues.CONNECTIONS} SMTP connections kept "
        f"open; run once, after the rounds: {outcome.rate:.0f} msgs/s, "
        f"{100 * outcome.rate / statistics.median(direct_rates):.1f} % of direct's median; "
        f"all jobs deferred after {committed:.2f} s, all succeeded after "
        f"{outcome.seconds:.2f} s"
    )


async def loopback(ctx: Context) -> Scenario:
    o = ctx.options
    n = o.events
    scenario = Scenario(
        1, f"Loopback throughput: {n} events, each an email to 3 recipients, no added latency"
    )
    sink = await _sink(ctx, scenario)
    data = prebuilt_message(ctx.content)

    async def alone() -> tuple[baselines.Outcome, list[str]]:
        ctx.progress(f"aiosmtplib alone, message prebuilt: {n} messages")
        return await _sent(
            sink, n, lambda: baselines.prebuilt(HOST, sink.port, n, data, o.connections)
        )

    source: baselines.Outcome | None = None
    source_sink: list[str] = []
    if SMTP_SOURCE is not None:
        ctx.progress(f"smtp-source: {n} messages")
        source, source_sink = await _sent(
            sink, n, lambda: baselines.smtp_source(sink.port, n, data, o.connections)
        )
    cluster = await pg.Cluster.start() if o.postgres else pg.Cluster(skipped="--no-postgres")
    rounds = []
    alone_rounds: list[tuple[baselines.Outcome, list[str]]] = []
    on_postgres: list[PostgresRound] = []
    try:
        for index in range(o.rounds):
            if o.rounds > 1:
                ctx.progress(f"round {index + 1} of {o.rounds}")
            label = f"round {index + 1}: " if o.rounds > 1 else ""
            # in every round, beside direct mode: the ratio of the two is target 1
            alone_rounds.append(await alone())
            rounds.append(await _throughput(ctx, scenario, sink, n, None, label))
            if cluster.server is not None:
                on_postgres.append(await _postgres_round(ctx, sink, cluster, n))
        reference = await _procrastinate(ctx, sink, cluster, n)
    finally:
        await cluster.close()
    direct_row = _median_row([r.direct for r in rounds])
    durable_row = _median_row([r.durable for r in rounds])
    writer_row = _median_row([r.writer for r in rounds if r.writer is not None])
    direct_row.target = Target(">=", 1000)
    shares = [100 * r.durable_run.rate / r.direct_run.rate for r in rounds]
    writer_shares = [
        100 * r.writer_run.rate / r.direct_run.rate for r in rounds if r.writer_run is not None
    ]
    against = [r.direct_run.rate / a.rate for r, (a, _) in zip(rounds, alone_rounds, strict=True)]
    prebuilt_problems = sorted(
        {p for a, problems in alone_rounds for p in (*a.problems(), *problems)}
    )
    median = " (median)" if o.rounds > 1 else ""
    scenario.rows += [
        direct_row,
        durable_row,
        *_share_rows("durable", shares, durable_row, direct_row, median),
        writer_row,
        *_share_rows("durable, writer process,", writer_shares, writer_row, direct_row, median),
        Row(
            "reference: aiosmtplib alone, message prebuilt" + median,
            statistics.median(a.rate for a, _ in alone_rounds),
            "msgs/s",
            direct_row.baseline,
            direct_row.baseline_label,
            problems=prebuilt_problems,
            reference=True,
        ),
        Row(
            "direct against aiosmtplib alone, message prebuilt" + median,
            statistics.median(against),
            "x",
            target=Target(">=", 1.0),
            problems=sorted(set(direct_row.problems + prebuilt_problems)),
        ),
    ]
    if source is not None:
        scenario.rows.append(
            Row(
                "reference: Postfix smtp-source (C)",
                source.rate,
                "msgs/s",
                direct_row.baseline,
                direct_row.baseline_label,
                problems=[*source.problems(), *source_sink],
                reference=True,
            )
        )
    else:
        scenario.notes.append("Postfix smtp-source not installed: no C reference")
    _postgres_rows(ctx, scenario, cluster, rounds, on_postgres)
    _procrastinate_row(scenario, reference, direct_row, [r.direct_run.rate for r in rounds])
    ours, theirs = buildcost.message_sizes()
    if o.rounds > 1:
        scenario.notes.append(
            f"{o.rounds} rounds of naive, direct, durable and durable with a writer process, "
            "back to back; rates are medians, "
            "the share is the median of each round's own share: "
            + ", ".join(f"{share:.1f} %" for share in shares)
            + "; with a writer process: "
            + ", ".join(f"{share:.1f} %" for share in writer_shares)
            + "; direct against aiosmtplib alone, prebuilt (measured just before it), "
            "each round: " + ", ".join(f"{x:.2f}x" for x in against)
        )
    scenario.notes.append(_cpu_note(rounds, on_postgres))
    scenario.notes += [
        f"all {n} events submitted at once (asyncio.gather of one notify() each); "
        f"dbnotify's pool and the baselines use {o.connections} connections",
        f"message size: dbnotify {ours:,} bytes, baselines {theirs:,} bytes (same rendered "
        "subject, text and HTML)",
        f"outbox on {o.outbox_dir} ({pipeline.filesystem(o.outbox_dir)}); SQLite WAL, "
        "synchronous = FULL",
        "durable: the writer a library's host has unless [outbox] writer names one (a "
        "thread); with a writer process: what `dbnotify serve` and `dbnotify worker` run",
    ]
    if pipeline.filesystem(o.outbox_dir) == "tmpfs":
        scenario.notes.append(
            "the outbox is on tmpfs: fsync costs nothing there, durable "
            "mode looks faster than on a disk (use --outbox-dir)"
        )
    return scenario


@dataclasses.dataclass
class _LatencyRound:
    chained: pipeline.PipelineRun
    unchained: pipeline.PipelineRun
    traffic: dict[str, Traffic]
    problems: dict[str, list[str]]


@contextlib.contextmanager
def _chaining(on: bool) -> Iterator[None]:
    """The email pool as it is (``on``), or as it was before issue 16: the same code with
    ``CHAIN`` off (each message waits for its own MAIL, RCPT and DATA replies: two round
    trips a message) and no limit on the messages rendered ahead (``AHEAD``)."""
    before = email_pool.CHAIN, email_pool.AHEAD
    if not on:
        email_pool.CHAIN, email_pool.AHEAD = False, sys.maxsize
    try:
        yield
    finally:
        email_pool.CHAIN, email_pool.AHEAD = before


async def _direct_through(
    sink: AnyServer, proxy: ChildServer, n: int, *, chained: bool
) -> tuple[pipeline.PipelineRun, Traffic, list[str]]:
    with _chaining(chained):
        (run, problems), traffic = await _through(
            proxy,
            lambda: _sent(
                sink,
                n,
                lambda: pipeline.direct(
                    throughput_config(proxy.port),
                    [backup_event(i) for i in range(n)],
                    len(RECIPIENTS),
                ),
            ),
        )
    return run, traffic, problems


async def latency(ctx: Context) -> Scenario:
    """The naive client once; then rounds of dbnotify direct with two round trips a
    message and with one (the next message's first commands with the end of data),
    interleaved, so that both see the same machine; durable mode once."""
    o = ctx.options
    n = o.proxy_events
    ms = o.delay * 1000
    scenario = Scenario(
        2,
        f"Throughput at {2 * ms:g} ms round trip: {n} events through a latency proxy "
        f"({ms:g} ms each way), at most {o.connections} connections",
    )
    sink = await _sink(ctx, scenario)
    proxy = await ctx.servers.proxy(sink.port, o.delay)
    rounds: list[_LatencyRound] = []
    try:
        measured = await _throughput(ctx, scenario, sink, n, proxy)
        for number in range(o.rounds):
            ctx.progress(f"round {number + 1} of {o.rounds}: direct, as before issue 16, then now")
            unchained, unchained_traffic, unchained_sink = await _direct_through(
                sink, proxy, n, chained=False
            )
            chained, chained_traffic, chained_sink = await _direct_through(
                sink, proxy, n, chained=True
            )
            rounds.append(
                _LatencyRound(
                    chained,
                    unchained,
                    {"direct before": unchained_traffic, "direct now": chained_traffic},
                    {
                        "chained": [*chained.problems(), *chained_sink],
                        "unchained": [*unchained.problems(), *unchained_sink],
                    },
                )
            )
    finally:
        await ctx.servers.stop(proxy)
    goal = 120.0  # issue 16: at most 8 connections where the server offers PIPELINING
    one_runs = [measured.direct_run.rate, *(r.chained.rate for r in rounds)]
    one = statistics.median(r.chained.rate for r in rounds)
    two = statistics.median(r.unchained.rate for r in rounds)
    median = " (median)" if o.rounds > 1 else ""
    direct = dataclasses.replace(
        measured.direct,
        label=f"direct mode (Notifier → SMTP), median of {len(one_runs)} runs",
        value=statistics.median(one_runs),
        target=Target(">=", goal),
        problems=sorted(
            {*measured.direct.problems, *(p for r in rounds for p in r.problems["chained"])}
        ),
    )
    measured.durable.target = Target(">=", goal)
    scenario.rows += [
        direct,
        measured.durable,
        Row(
            "direct, now against before issue 16" + median,
            one,
            "msgs/s",
            two,
            "dbnotify direct as before issue 16 (2 round trips a message: the next MAIL "
            "not sent with the end of data; a burst rendered all at once), interleaved",
            target=Target(">=", 1.6 * two, f"≥ 1.6x ({1.6 * two:.0f} msgs/s)"),
            problems=sorted({p for r in rounds for ps in r.problems.values() for p in ps}),
        ),
    ]
    for mode in ("direct", "durable"):
        opened = measured.traffic[mode].connections
        scenario.rows.append(
            Row(
                f"{mode} mode: connections opened",
                opened,
                "",
                measured.traffic["naive"].connections,
                measured.direct.baseline_label,
                target=Target("<=", o.connections),
            )
        )
    traffic = {**measured.traffic, **rounds[-1].traffic}
    scenario.notes += [
        "client writes per message (about one per round trip waited for): "
        + ", ".join(f"{mode} {t.writes / n:.1f}" for mode, t in traffic.items()),
        "direct mode, each round: "
        + "; ".join(f"{r.unchained.rate:.1f} → {r.chained.rate:.1f} msgs/s" for r in rounds)
        + f" (before → after issue 16; at one round trip a message, {o.connections} "
        f"connections take {o.connections / (2 * o.delay):.0f} msgs/s, less set-up)",
    ]
    return scenario


async def _notify_once(config: dict[str, Any], event: Event) -> tuple[float, DispatchResult]:
    """A new Notifier (so no pooled connection), one notify(), timed; then closed."""
    notifier = Notifier.from_config(config)
    try:
        started = time.perf_counter()
        result = await notifier.notify(event)
        return time.perf_counter() - started, result
    finally:
        await notifier.aclose()


def _short(result: DispatchResult, expected: int) -> str | None:
    """Why ``result`` is not ``expected`` recipients delivered, or None."""
    delivered = sum(1 for r in result.recipients if r.status is Status.DELIVERED)
    if delivered == expected and result.ok:
        return None
    reasons = first_reasons(str(r.reason) for r in result.failed)
    return f"{delivered} of {expected} delivered" + (f": {reasons}" if reasons else "")


async def fanout(ctx: Context) -> Scenario:
    o = ctx.options
    ms = o.delay * 1000
    scenario = Scenario(
        3,
        f"Fan-out at {2 * ms:g} ms round trip: one user_login to an email channel (3 "
        "recipients), the user's copy and a webhook; time until all are delivered",
    )
    sink = await _sink(ctx, scenario)
    http = await ctx.servers.http()
    smtp_proxy = await ctx.servers.proxy(sink.port, o.delay)
    http_proxy = await ctx.servers.proxy(http.port, o.delay)
    config = fanout_config(smtp_proxy.port, http_proxy.port)
    alone = email_only_config(smtp_proxy.port)
    data = prebuilt_message(ctx.content)
    problems: list[str] = []
    alone_problems: list[str] = []
    base_problems: list[str] = []
    ours: list[float] = []
    theirs: list[float] = []
    email_alone: list[float] = []
    channel_seconds: dict[str, list[float]] = {}
    smtp_before = await _count(sink, "messages")
    http_before = await _count(http, "requests")
    try:
        for repeat in range(o.repeats + 1):  # the first is a warm-up, not counted
            seconds, accepted = await baselines.one_transaction(HOST, smtp_proxy.port, data)
            if accepted != len(RECIPIENTS):
                base_problems.append(f"{accepted} of 3 recipients accepted")
            elapsed, result = await _notify_once(config, login_event())
            if (problem := _short(result, len(RECIPIENTS) + 2)) is not None:
                problems.append(problem)
            single, only = await _notify_once(alone, backup_event(repeat))
            if (problem := _short(only, len(RECIPIENTS))) is not None:
                alone_problems.append(problem)
            if repeat == 0:
                continue
            ours.append(elapsed)
            theirs.append(seconds)
            email_alone.append(single)
            for c in result.channels:
                name = c.channel + (" (user copy)" if c.target is DeliveryTarget.USER else "")
                channel_seconds.setdefault(name, []).append(c.duration)
    finally:
        await ctx.servers.stop(smtp_proxy)
        await ctx.servers.stop(http_proxy)
    runs = o.repeats + 1
    # per run: the baseline's message, the channel's and the user's copy, the email alone
    _got, lost = await _arrived(sink, "messages", smtp_before, 4 * runs, "SMTP messages")
    _got, lost_http = await _arrived(http, "requests", http_before, runs, "webhook requests")
    figure = statistics.median(ours) * 1000
    baseline = statistics.median(theirs) * 1000
    label = (
        "one SMTP transaction on a fresh connection (3 recipients, aiosmtplib, from connect "
        "to the reply after the data; QUIT not timed)"
    )
    base = [f"baseline: {p}" for p in sorted(set(base_problems))]
    scenario.rows += [
        Row(
            "one event, every target delivered",
            figure,
            "ms",
            baseline,
            label,
            target=Target("<=", 1.3 * baseline, f"≤ 1.3x ({1.3 * baseline:.0f} ms)"),
            problems=sorted(set(problems)) + lost + lost_http + base,
        ),
        Row(
            "reference: dbnotify, the email channel alone",
            statistics.median(email_alone) * 1000,
            "ms",
            baseline,
            label,
            problems=sorted(set(alone_problems)) + lost + base,
            reference=True,
        ),
    ]
    scenario.notes += [
        f"median of {o.repeats} repeats after 1 warm-up; each a new Notifier (no pooled "
        "connection), timed from notify() to its result; the reference sends a "
        "backup_success to the same email channel alone",
        "per target, median: "
        + ", ".join(
            f"{name} {statistics.median(s) * 1000:.0f} ms" for name, s in channel_seconds.items()
        ),
        f"round trip {2 * ms:g} ms: a command and its reply cost at least that; TCP "
        "connection set-up is not delayed by the proxy",
    ]
    return scenario


async def cold_start(ctx: Context) -> Scenario:
    o = ctx.options
    scenario = Scenario(4, "Cold start: `dbnotify plugins` in a fresh process")
    ctx.progress("compiling bytecode (as pip does at install)")
    compile_s, what = await asyncio.to_thread(coldstart.compile_bytecode)
    command = [str(coldstart.DBNOTIFY), "plugins"]
    commands = [(command, "email"), ([sys.executable, "-c", "pass"], "")]
    apprise = coldstart.APPRISE.exists()
    if apprise:
        # --version: the least any Apprise command does (start, parse, print), so below
        # it is below every Apprise command; --details, which lists the services it
        # supports as `dbnotify plugins` lists channel types, is a reference
        commands += [
            ([str(coldstart.APPRISE), "--version"], "Apprise"),
            ([str(coldstart.APPRISE), "--details"], "Apprise"),
        ]
    ctx.progress(f"{' '.join(command)} and baselines: {o.starts} runs each, interleaved")
    ours, floor, *peers = await asyncio.to_thread(coldstart.measure, commands, o.starts)
    base = [f"baseline: {f}" for f in sorted(set(floor.failures))]
    label = f"`python -c pass`, the same interpreter ({sys.executable})"
    limit = 6 * floor.median_ms
    scenario.rows += [
        Row(
            "wall time (median)",
            ours.median_ms,
            "ms",
            floor.median_ms,
            label,
            target=Target("<=", limit, f"≤ 6x ({limit:.0f} ms)"),
            problems=sorted(set(ours.failures)) + base,
        ),
    ]
    if peers:
        version, details = peers
        scenario.rows += [
            Row(
                "wall time against Apprise's CLI",
                ours.median_ms,
                "ms",
                version.median_ms,
                "`apprise --version`, its lightest command",
                target=Target("<=", version.median_ms, f"< Apprise ({version.median_ms:.0f} ms)"),
                problems=sorted(set(ours.failures))
                + [f"apprise --version: {f}" for f in sorted(set(version.failures))],
            ),
            Row(
                "reference: `apprise --details` (lists its services)",
                details.median_ms,
                "ms",
                floor.median_ms,
                label,
                reference=True,
                problems=[f"apprise --details: {f}" for f in sorted(set(details.failures))],
            ),
        ]
    else:
        scenario.rows.append(
            Row(
                "wall time against Apprise's CLI",
                None,
                "ms",
                skipped=f"{coldstart.APPRISE} not installed (it comes with dbnotify-apprise)",
            )
        )
    scenario.rows.append(
        Row(
            "peak memory (max RSS)",
            ours.peak_mib,
            "MiB",
            floor.peak_mib,
            label,
            target=Target("<=", 40),
            problems=sorted(set(ours.failures)) + base,
        )
    )
    scenario.notes += [
        f"bytecode compiled first (compileall of site-packages and the workspace sources, "
        f"{what}, {compile_s:.1f} s); runs without PYTHONDONTWRITEBYTECODE",
        f"wall time: median of {o.starts} runs after 1 untimed, spawned directly, from "
        f"spawn to exit, the commands taking turns; peak RSS: max of {o.starts} more runs, "
        f"through {coldstart.peak_method()}",
    ]
    return scenario


async def build_cost(ctx: Context) -> Scenario:
    o = ctx.options
    scenario = Scenario(5, "Render and MIME build time per message (CPU, no network)")
    ctx.progress(f"{o.build_messages} notifications x {o.build_repeats} repeats")
    cost = await asyncio.to_thread(buildcost.measure, o.build_messages, o.build_repeats)
    label = "naive EmailMessage set_content + add_alternative + as_bytes of the same text/HTML"
    scenario.rows += [
        Row(
            "render + MIME: dbnotify_email.plugin.outgoing()",
            cost.outgoing_ms,
            "ms",
            cost.naive_ms,
            label,
            target=Target("<=", 0.3),
        ),
        Row("of which render (subject, text, HTML)", cost.render_ms, "ms", reference=True),
        Row(
            "of which MIME (outgoing - render)",
            cost.mime_ms,
            "ms",
            cost.naive_ms,
            label,
            reference=True,
        ),
    ]
    scenario.notes += [
        f"median over {cost.repeats} repeats of {cost.messages} distinct notifications each "
        "(3 backup_success to 1 backup_failure), fresh ones every repeat; gc on",
        f"message size: dbnotify {cost.outgoing_bytes:,} bytes, naive {cost.naive_bytes:,} bytes",
    ]
    return scenario


BURST_GROWTH_MIB = 10.0
"""Scenario 6: what the RSS may grow past the first tenth of the burst and still be
flat: the allocator keeps freed memory, and SQLite's page cache fills to its bound."""
BURST_IN_FLIGHT = 500
"""Scenario 6: notify() calls awaited at once."""


async def burst_memory(ctx: Context) -> Scenario:
    o = ctx.options
    n = o.burst
    marks = [n // 10, n // 2, n]
    scenario = Scenario(
        6,
        f"Memory under a burst: {n:,} notifications into the SQLite outbox while its worker "
        "delivers them (durable mode)",
    )
    sink = await _sink(ctx, scenario)
    ctx.progress(f"durable mode, {n:,} notifications, memory after {marks}")
    (run, found), sink_problems = await _sent(
        sink,
        n,
        lambda: pipeline.burst(
            lambda path: throughput_config(sink.port, outbox=path),
            backup_event,
            n,
            len(RECIPIENTS),
            o.outbox_dir,
            marks,
            in_flight=BURST_IN_FLIGHT,
        ),
    )
    problems = [*run.problems(), *sink_problems]
    first = found[0]
    after = [m for m in found if m is not first]
    rss = max(m.rss_mib for m in after)
    blocks = max(m.blocks for m in after)
    since = f"past the first {first.submitted:,}"
    scenario.rows += [
        Row(
            f"RSS after {m.submitted:,} committed"
            + (" and all delivered" if m is found[-1] else f" ({m.delivered:,} delivered)"),
            m.rss_mib,
            "MiB",
            reference=True,
            problems=problems,
        )
        for m in found
    ]
    scenario.rows += [
        Row(
            f"RSS {since}, the highest",
            rss,
            "MiB",
            first.rss_mib,
            f"RSS after the first {first.submitted:,}",
            target=Target(
                "<=",
                first.rss_mib + BURST_GROWTH_MIB,
                f"≤ {first.rss_mib + BURST_GROWTH_MIB:.1f} MiB (+{BURST_GROWTH_MIB:g})",
            ),
            problems=problems,
        ),
        Row(
            f"Python heap {since}, the highest (allocated blocks)",
            blocks,
            "blocks",
            first.blocks,
            f"blocks after the first {first.submitted:,}",
            target=Target("<=", 1.05 * first.blocks, "≤ 1.05x the first's"),
            problems=problems,
        ),
    ]
    scenario.notes.append(
        f"growth {since}: RSS {rss - first.rss_mib:+.1f} MiB, Python heap "
        f"{blocks - first.blocks:+,} blocks"
    )
    scenario.notes += [
        "Python heap (sys.getallocatedblocks(), after gc.collect()) at each mark: "
        + ", ".join(f"{m.submitted:,}: {m.blocks:,}" for m in found),
        f"{n:,} notify() calls, {BURST_IN_FLIGHT} at a time (the host's side stays the same "
        f"size), the Notifier's own worker delivering meanwhile; all committed after "
        f"{run.details.get('committed_s', float('nan')):.1f} s, all delivered after "
        f"{run.seconds:.1f} s ({run.rate:.0f} msgs/s)",
        f"outbox on {o.outbox_dir} ({pipeline.filesystem(o.outbox_dir)})",
    ]
    return scenario


SCENARIOS: dict[int, Callable[[Context], Awaitable[Scenario]]] = {
    1: loopback,
    2: latency,
    3: fanout,
    4: cold_start,
    5: build_cost,
    6: burst_memory,
    7: serving.http_events,
}


def as_json(scenarios: list[Scenario], machine: dict[str, str], options: Options) -> dict[str, Any]:
    return {
        "machine": machine,
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(options).items()
        },
        "scenarios": [s.as_dict() for s in scenarios],
        "valid": all(s.valid for s in scenarios),
    }
