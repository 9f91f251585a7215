"""``python3 -m uv run python bench/instructions.py``: instructions a notification costs.

Scenario 1's shares move by ±5 points from one minute to the next on a shared machine;
the work a notification costs this process does not. Valgrind's cachegrind counts the
instructions a process executes, every thread of it. Each mode runs a burst of
``--small`` events and one of ``--large`` events, each in a process of its own under
cachegrind; the difference over the difference in events is one notification's, without
the start-up, the first connections and the outbox's creation. The SMTP sink and a writer
process are processes of their own, not counted: what is counted is what the host pays.
Where the host's CPU is what limits durable mode (docs/performance.md), direct mode's
count as a share of a durable mode's is what that mode's share of direct mode follows,
less what instructions do not show (caches, the other processes on the machine).

Needs valgrind (``apt-get install valgrind``); a few minutes, ``--quick`` a smoke run.
Exit status 0 when every burst delivered everything, 1 when one did not, 2 for bad
arguments or no valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":  # as a script: the checkout's root first, as bench/run.py does
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import pipeline, servers
from bench.workload import RECIPIENTS, backup_event, throughput_config

MODES = {
    "direct": "direct",
    "process": "durable, writer process",
    "thread": "durable, writer thread",
}
"""What ``--modes`` may name, and how the output calls it."""
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _modes(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    wrong = [m for m in chosen if m not in MODES]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)} (got {text!r})")
    return chosen


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/instructions.py",
        description="Instructions a notification costs this process, by mode (cachegrind).",
    )
    p.add_argument("--quick", action="store_true", help="bursts of 20 and 60: a smoke run")
    p.add_argument("--small", type=int, default=200, help="events in the first burst (200)")
    p.add_argument("--large", type=int, default=1000, help="events in the second (1000)")
    p.add_argument(
        "--modes",
        type=_modes,
        default=list(MODES),
        help="which of direct, process, thread (all; direct is always run first)",
    )
    p.add_argument(
        "--sink",
        choices=["auto", "smtp-sink", "aiosmtpd"],
        default="auto",
        help="SMTP sink: Postfix's smtp-sink where installed (auto), or the aiosmtpd one",
    )
    p.add_argument(
        "--burst", nargs=4, metavar=("MODE", "EVENTS", "PORT", "FOLDER"), help=argparse.SUPPRESS
    )  # one burst: what runs under cachegrind
    return p


async def _burst(mode: str, events: int, port: int, folder: Path) -> list[str]:
    """One burst of ``events`` in ``mode``; what went wrong (nothing, normally)."""
    pipeline.POLL = 1.0  # the polling's own work grows with the time valgrind takes
    batch = [backup_event(i) for i in range(events)]
    if mode == "direct":
        run = await pipeline.direct(throughput_config(port), batch, len(RECIPIENTS))
    else:
        writer = "process" if mode == "process" else "thread"
        run = await pipeline.durable(
            lambda path: throughput_config(port, outbox={"path": path, "writer": writer}),
            batch,
            len(RECIPIENTS),
            folder,
        )
    return run.problems()


def _count(valgrind: str, mode: str, events: int, port: int, folder: Path) -> int:
    """Instructions this script executes for one burst, counted by cachegrind."""
    done = subprocess.run(
        [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            "--burst",
            mode,
            str(events),
            str(port),
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        said = [line for line in done.stderr.splitlines() if not line.startswith("==")]
        raise RuntimeError(
            f"{MODES[mode]}, {events} events: exit status {done.returncode}: "
            + ("; ".join(said[-5:]) or "no count from cachegrind")
        )
    return int(found.group(1).replace(",", ""))


async def _measure(options: argparse.Namespace, valgrind: str) -> int:
    small, large = (20, 60) if options.quick else (options.small, options.large)
    modes = ["direct", *(m for m in options.modes if m != "direct")]
    print(
        f"instructions a notification in this process (cachegrind; bursts of {small:,} and "
        f"{large:,} events, {len(RECIPIENTS)} recipients each; the sink and a writer process "
        "not counted)",
        flush=True,
    )
    sink, notes = await servers.start_smtp_sink(options.sink)
    for note in notes:
        print(f"  note: {note}")
    each: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="dbnotify-instructions-") as folder:
            for mode in modes:
                counts = [
                    await asyncio.to_thread(_count, valgrind, mode, events, sink.port, Path(folder))
                    for events in (small, large)
                ]
                each[mode] = (counts[1] - counts[0]) / (large - small)
                share = (
                    ""
                    if mode == "direct"
                    else f"   direct's is {100 * each['direct'] / each[mode]:.1f} % of it"
                )
                print(f"  {MODES[mode]:<26} {each[mode]:>12,.0f}{share}", flush=True)
    except RuntimeError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    finally:
        await sink.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    if options.burst is not None:
        mode, events, port, folder = options.burst
        problems = asyncio.run(_burst(mode, int(events), int(port), Path(folder)))
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    if not 0 < options.small < options.large:
        print(
            "bench/instructions.py: --small must be at least 1 and below --large", file=sys.stderr
        )
        return 2
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print(
            "bench/instructions.py: valgrind is not installed (apt-get install valgrind)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_measure(options, valgrind))


if __name__ == "__main__":
    sys.exit(main())
