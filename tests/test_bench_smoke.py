"""The benchmark keeps working: ``bench/run.py --quick`` runs every scenario, exit 0, and
``bench/instructions.py --quick`` counts a notification's instructions (under valgrind).

A smoke run, not a measurement: few events, the aiosmtpd sink (no Postfix needed). Exit
status 0 means every figure was valid: every message arrived, nothing failed. Whether
the targets are met is not checked here. Scenario 1's PostgreSQL rows run where
PostgreSQL and psycopg are installed (a cluster of the bench's own, three ``dbnotify
worker`` processes), and say why they were skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _postgres_missing() -> bool:
    """True where the bench's PostgreSQL rows are skipped: no server programs or psycopg."""
    from dbnotify.testing import postgres

    try:
        postgres.find_binaries()
        import psycopg  # noqa: F401
    except (postgres.Unavailable, ImportError):
        return True
    return False


def _bench(
    script: str, *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``bench/<script> args`` as a user runs it: what it printed, and its exit status."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def test_bench_quick_runs_every_scenario(tmp_path: Path) -> None:
    figures = tmp_path / "bench.json"
    done = _bench(
        "run.py",
        "--quick",
        "--sink",
        "aiosmtpd",
        "--json",
        str(figures),
        "--outbox-dir",
        str(tmp_path),
        timeout=110,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    for number in range(1, 8):
        assert f"\n== {number}. " in done.stdout
    assert "every figure valid" in done.stdout
    report = json.loads(figures.read_text(encoding="utf-8"))
    assert report["valid"] is True
    assert [s["number"] for s in report["scenarios"]] == [1, 2, 3, 4, 5, 6, 7]
    for scenario in report["scenarios"]:
        assert scenario["rows"], scenario["title"]
        for row in scenario["rows"]:
            assert row["valid"], row
            if row["skipped"] is not None:
                assert row["value"] is None, row
                continue
            assert row["value"] is not None, row
            assert row["value"] > 0, row
    (cpu,) = [n for n in report["scenarios"][0]["notes"] if n.startswith("this process's CPU")]
    assert re.fullmatch(
        r"this process's CPU a notification while clocked \(medians of the rounds\): "
        r"direct [\d,]+ µs; durable [\d,]+ µs \(direct's is \d+ % of it\); durable with a "
        r"writer process [\d,]+ µs \(direct's is \d+ % of it\)"
        r"(; on PostgreSQL, 1 worker [\d,]+ µs \(direct's is \d+ % of it\))?",
        cpu,
    ), cpu
    rows = report["scenarios"][0]["rows"]
    on_postgres = [r for r in rows if "PostgreSQL" in r["label"] and not r["reference"]]
    assert len(on_postgres) == 5, rows
    (queue,) = [r for r in rows if "procrastinate" in r["label"]]  # run, or skipped: why
    assert queue["skipped"] or queue["value"] > 0, queue
    if _postgres_missing():
        assert all(r["skipped"] for r in on_postgres), on_postgres
        assert ": skipped: " in done.stdout
    else:
        assert not any(r["skipped"] for r in on_postgres), on_postgres
    assert not list(tmp_path.glob("outbox-*")), "durable mode left its outbox behind"


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instructions_counts_a_notification_in_each_mode() -> None:
    done = _bench(
        "instructions.py", "--quick", "--modes", "process", "--sink", "aiosmtpd", timeout=300
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("instructions a notification in this process (cachegrind;")
    direct = re.fullmatch(r"  direct +([\d,]+)", lines[1])
    durable = re.fullmatch(
        r"  durable, writer process +([\d,]+)   direct's is (\d+\.\d) % of it", lines[2]
    )
    assert direct, done.stdout
    assert durable, done.stdout
    counts = [int(found.group(1).replace(",", "")) for found in (direct, durable)]
    # a notification costs a host hundreds of thousands of instructions, not start-up's
    # hundreds of millions: the bursts' difference took start-up out
    assert all(100_000 < count < 20_000_000 for count in counts), counts
    assert float(durable.group(2)) == pytest.approx(100 * counts[0] / counts[1], abs=0.05)


def test_instructions_says_what_to_install_without_valgrind(tmp_path: Path) -> None:
    empty = {**os.environ, "PATH": str(tmp_path)}  # a folder with no valgrind in it
    done = _bench("instructions.py", "--quick", timeout=60, env=empty)
    assert done.returncode == 2
    assert done.stderr == (
        "bench/instructions.py: valgrind is not installed (apt-get install valgrind)\n"
    )
    assert done.stdout == ""
