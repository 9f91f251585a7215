"""What the figures were measured on: CPU, cores, Python, kernel, versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def _commit() -> str:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def describe() -> dict[str, str]:
    """The machine and software, for the top of the output and the JSON."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()}" + (f" ({usable} usable)" if usable != os.cpu_count() else "")
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "python": f"{platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable})",
        "kernel": f"{platform.system()} {platform.release()}",
        "dbnotify": _version("dbnotify"),
        "dbnotify-email": _version("dbnotify-email"),
        "aiosmtplib": _version("aiosmtplib"),
        "aiosmtpd": _version("aiosmtpd"),
        "commit": _commit(),
    }
