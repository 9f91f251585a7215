"""The one command: ``python3 -m uv run python bench/run.py [--quick] [--only 1,3] ...``.

Prints the machine, then one table per scenario as it finishes, then a summary. Exit
status 0 when every figure is valid (targets met or not), 1 when a figure could not be
trusted (failed deliveries, a sink that received less) or a scenario could not run,
2 for bad arguments, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import machine
from bench.report import Scenario, table
from bench.scenarios import SCENARIOS, Context, Options, as_json
from bench.servers import Servers
from bench.workload import Content

QUICK = Options(
    events=100,
    rounds=1,
    proxy_events=24,
    repeats=3,
    starts=3,
    build_messages=50,
    build_repeats=3,
    burst=1000,
)


def _only(text: str) -> list[int]:
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers such as 1,3 (got {text!r})") from None
    wrong = [n for n in chosen if n not in SCENARIOS]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"scenarios are 1 to {len(SCENARIOS)} (got {text!r})")
    return chosen


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="dbnotify's benchmark: six scenarios, each beside a baseline measured "
        "in the same run (docs/performance.md).",
    )
    p.add_argument("--quick", action="store_true", help="few events and repeats: a smoke run")
    p.add_argument("--only", type=_only, help="run only these scenarios, e.g. --only 1,3")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    p.add_argument(
        "--sink",
        choices=["auto", "smtp-sink", "aiosmtpd"],
        default="auto",
        help="SMTP sink: Postfix's smtp-sink where installed (auto), or the aiosmtpd one",
    )
    p.add_argument("--events", type=_positive, help="scenario 1's events (default 2000)")
    p.add_argument(
        "--rounds", type=_positive, help="scenario 1's rounds, medians reported (default 3)"
    )
    p.add_argument(
        "--no-postgres",
        action="store_true",
        help="scenario 1: skip durable mode on PostgreSQL (run where it is installed)",
    )
    p.add_argument("--proxy-events", type=_positive, help="scenario 2's events (default 400)")
    p.add_argument("--burst", type=_positive, help="scenario 6's notifications (default 100000)")
    p.add_argument(
        "--outbox-dir",
        type=Path,
        help="where durable mode's outbox files go (default: the system's temp folder; "
        "put it on the disk a host would use)",
    )
    return p


def options(args: argparse.Namespace) -> Options:
    chosen = Options(**vars(QUICK)) if args.quick else Options()
    chosen.sink = args.sink
    chosen.outbox_dir = args.outbox_dir or Path(tempfile.gettempdir())
    if args.events:
        chosen.events = args.events
    if args.rounds:
        chosen.rounds = args.rounds
    chosen.postgres = not args.no_postgres
    if args.proxy_events:
        chosen.proxy_events = args.proxy_events
    if args.burst:
        chosen.burst = args.burst
    return chosen


async def _run(numbers: list[int], opts: Options) -> list[Scenario]:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    done: list[Scenario] = []
    async with Servers(opts.sink) as servers:
        context = Context(opts, servers, Content.sample())
        for number in numbers:
            started = time.perf_counter()
            print(f"\nrunning scenario {number} ...", file=sys.stderr, flush=True)
            try:
                scenario = await SCENARIOS[number](context)
            except Exception as exc:  # noqa: BLE001 - reported; the other scenarios still run
                traceback.print_exc()
                scenario = Scenario(number, SCENARIOS[number].__name__.replace("_", " "))
                scenario.error = f"{type(exc).__name__}: {exc}"
            scenario.seconds = time.perf_counter() - started
            done.append(scenario)
            print("\n" + table(scenario), flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    opts = options(args)
    numbers = args.only or sorted(SCENARIOS)
    if not opts.outbox_dir.is_dir():
        print(f"--outbox-dir {opts.outbox_dir}: no such folder", file=sys.stderr)
        return 2
    # dbnotify logs every failed delivery at WARNING: the bench counts and reports them
    logging.getLogger("dbnotify").setLevel(logging.ERROR)
    about = machine.describe()
    print("dbnotify benchmark" + (" (--quick: a smoke run, not figures)" if args.quick else ""))
    for key, value in about.items():
        print(f"  {key + ':':16} {value}")
    print(f"  {'event loop:':16} asyncio (default policy)")
    print(f"  {'scenarios:':16} {', '.join(map(str, numbers))}", flush=True)
    try:
        scenarios = asyncio.run(_run(numbers, opts))
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("\nterminated; servers stopped", file=sys.stderr)
        return 143
    rows = [r for s in scenarios for r in s.rows if r.target is not None and r.skipped is None]
    met = sum(1 for r in rows if r.met)
    skipped = [r for s in scenarios for r in s.rows if r.skipped is not None]
    invalid = [f"{s.number}. {r.label}" for s in scenarios for r in s.rows if not r.valid]
    failed = [f"{s.number}" for s in scenarios if s.error]
    print(f"\nsummary: {met} of {len(rows)} targets met", end="")
    print(f"; INVALID figures: {', '.join(invalid)}" if invalid else "; every figure valid", end="")
    print(f"; {len(skipped)} figures skipped" if skipped else "", end="")
    print(f"; scenarios that did not run: {', '.join(failed)}" if failed else "")
    if args.json:
        args.json.write_text(
            json.dumps(as_json(scenarios, about, opts), indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        print(f"figures written to {args.json}")
    return 0 if all(s.valid for s in scenarios) else 1
