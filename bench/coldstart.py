"""Scenario 4: the wall time and peak memory of ``dbnotify plugins``, a fresh process,
beside ``python -c pass`` and Apprise's command-line tool.

Bytecode first: uv installs without compiling, and this environment may set
PYTHONDONTWRITEBYTECODE, so a first start would compile every module it imports and a
measurement would be of the compiler. Like pip at install time, the bench compiles the
environment's site-packages and the workspace's sources (``compileall``), then runs the
command without PYTHONDONTWRITEBYTECODE. One untimed run warms the OS's file cache.

Wall time: each run spawned directly (``posix_spawn``), from spawn to exit, the commands
interleaved (one run of each in turn), so that a change in the machine's load moves them
alike. Peak memory:
separate runs, each the child of a small process (GNU ``time``, else a minimal Python
helper) that reads its ``ru_maxrss`` from ``wait4``: a child of the bench itself would
count the bench's own memory, which it shares until it execs.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from bench.machine import ROOT

DBNOTIFY = Path(sys.executable).with_name("dbnotify")
APPRISE = Path(sys.executable).with_name("apprise")
"""Apprise's command-line tool, installed with the dbnotify-apprise plugin."""


@dataclasses.dataclass
class Runs:
    command: list[str]
    seconds: list[float] = dataclasses.field(default_factory=list)
    peak_kib: list[int] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000 if self.seconds else float("nan")

    @property
    def peak_mib(self) -> float:
        return max(self.peak_kib) / 1024 if self.peak_kib else float("nan")


def environment() -> dict[str, str]:
    """The bench's environment, writing bytecode allowed."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_bytecode() -> tuple[float, str]:
    """Compile site-packages and the workspace's sources; seconds taken, and what."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    paths += [str(ROOT / "core" / "src"), *(str(p) for p in sorted(ROOT.glob("plugins/*/src")))]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *paths],
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    seconds = time.perf_counter() - started
    # a non-zero status means some file did not compile (test data of some package):
    # everything else was compiled
    status = "" if done.returncode == 0 else " (some files did not compile)"
    return seconds, f"{len(paths)} folders{status}"


def spawn(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run once, directly: seconds from spawn to exit, exit status, output."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=_quiet(out.fileno()))
        _pid, status = os.waitpid(pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    return seconds, os.waitstatus_to_exitcode(status), text


def _quiet(fd: int) -> list[tuple[int, ...] | tuple[int, int, str, int, int]]:
    return [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, fd, 1),
        (os.POSIX_SPAWN_DUP2, fd, 2),
    ]


GNU_TIME = "/usr/bin/time"
_HELPER = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_pid, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_method() -> str:
    if os.access(GNU_TIME, os.X_OK):
        return f"{GNU_TIME} -f %M (ru_maxrss of a child forked by a small C process)"
    return (
        "a minimal Python helper (python -I -S) that spawns the command and reads os.wait4's "
        "ru_maxrss: its own few MiB are a floor under the figure"
    )


def peak(argv: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """Run once through a small parent: peak RSS in KiB, exit status, output.

    Not from the bench itself: a child spawned by a large process inherits that
    process's memory until it execs, and ``ru_maxrss`` counts it.
    """
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as out:
        report = os.path.join(folder, "peak")
        if os.access(GNU_TIME, os.X_OK):
            wrapper = [GNU_TIME, "-f", "%M", "-o", report]
        else:
            wrapper = [sys.executable, "-I", "-S", "-c", _HELPER, report]
        pid = os.posix_spawn(wrapper[0], [*wrapper, *argv], env, file_actions=_quiet(out.fileno()))
        _pid, status = os.waitpid(pid, 0)
        out.seek(0)
        text = out.read().decode(errors="replace")
        try:
            lines = Path(report).read_text(encoding="utf-8").split()
            kib = int(lines[-1])
        except (OSError, ValueError, IndexError):
            kib = 0
    return kib, os.waitstatus_to_exitcode(status), text


def measure(commands: list[tuple[list[str], str]], runs: int) -> list[Runs]:
    """For each ``(argv, expect)``: one untimed run, then ``runs`` timed ones (wall time,
    spawned directly, the commands taking turns) and ``runs`` for memory (through
    :func:`peak`); each must exit 0 and print ``expect``."""
    env = environment()
    results = [Runs(argv) for argv, _expect in commands]

    def check(result: Runs, expect: str, status: int, text: str) -> bool:
        if status == 0 and expect in text:
            return True
        last = text.strip().splitlines()[-1:] or ["no output"]
        result.failures.append(f"exit status {status}: {last[0]}")
        return False

    for number in range(runs + 1):
        for (argv, expect), result in zip(commands, results, strict=True):
            seconds, status, text = spawn(argv, env)
            if check(result, expect, status, text) and number > 0:
                result.seconds.append(seconds)
    for (argv, expect), result in zip(commands, results, strict=True):
        for _ in range(runs):
            kib, status, text = peak(argv, env)
            if check(result, expect, status, text):
                result.peak_kib.append(kib)
    return results
