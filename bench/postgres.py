"""Durable mode on PostgreSQL: a throwaway cluster, a schema per run, worker processes.

The cluster is :func:`dbnotify.testing.postgres.start`'s: a real PostgreSQL of its own
on 127.0.0.1, ``fsync`` on. Each run gets a schema of its own (the store creates it on
first use), dropped afterwards, so that each run starts from an empty outbox. Without
PostgreSQL's programs or psycopg, :meth:`Cluster.start` says why, and the PostgreSQL
rows are skipped with that reason.

Three workers are ``dbnotify worker`` processes, as an operator runs them: each reads a
configuration file written here (the password goes in ``PGPASSWORD``, not in the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.coldstart import DBNOTIFY
from bench.machine import ROOT
from bench.servers import _LIVE, _stop

READY = b"due now"
"""What ``dbnotify worker`` prints on standard error once its outbox answered."""


class Cluster:
    """The bench's PostgreSQL (:meth:`start`); :attr:`skipped` says why there is none."""

    def __init__(self, server: Any = None, skipped: str | None = None) -> None:
        self.server = server
        self.skipped = skipped
        self._schemas = 0
        self.description = f"none ({skipped})"

    @classmethod
    async def start(cls) -> Cluster:
        """A running cluster; or none, with the reason, when PostgreSQL or psycopg is
        missing. A server that is there but fails to start raises."""
        try:
            from dbnotify.testing import postgres
        except ImportError as exc:  # pragma: no cover - the module ships with the core
            return cls(skipped=f"dbnotify.testing.postgres: {exc}")
        try:
            server = await asyncio.to_thread(postgres.start)
        except postgres.Unavailable as exc:
            return cls(skipped=str(exc))
        cluster = cls(server)
        version = (await asyncio.to_thread(server.admin, "SHOW server_version"))[0][0]
        cluster.description = (
            f"PostgreSQL {version} (dbnotify.testing.postgres: a cluster of its own on "
            "127.0.0.1, fsync on, synchronous_commit on)"
        )
        return cluster

    def schema(self) -> str:
        """A new schema's name: each run starts from an empty outbox."""
        self._schemas += 1
        return f"bench_{os.getpid()}_{self._schemas}"

    def outbox(self, schema: str) -> dict[str, Any]:
        """``[outbox]`` for ``schema``."""
        assert self.server is not None
        return {"url": self.server.url, "password": self.server.password, "schema": schema}

    async def drop(self, schema: str) -> None:
        assert self.server is not None
        await asyncio.to_thread(self.server.admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    async def close(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.close)
            self.server = None


def _toml(value: Any) -> str:
    """``value`` as TOML (inline tables): enough for a bench configuration."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    raise TypeError(f"no TOML for {value!r}")


def write_config(config: dict[str, Any], folder: Path) -> Path:
    """``config`` as a TOML file in ``folder``, without the outbox's password."""
    config = {**config, "outbox": {k: v for k, v in config["outbox"].items() if k != "password"}}
    path = folder / "dbnotify.toml"
    path.write_text(
        "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in config.items()), encoding="utf-8"
    )
    return path


@contextlib.asynccontextmanager
async def workers(config: dict[str, Any], count: int) -> AsyncIterator[list[str]]:
    """``count`` ``dbnotify worker`` processes on ``config``'s outbox, each ready (its
    outbox answered) when this yields; stopped (SIGTERM) on the way out. Yields a list
    that then holds each worker's last words (``worker stopped after N attempts``)."""
    words: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        path = write_config(config, Path(folder))
        env = {**os.environ, "PGPASSWORD": str(config["outbox"]["password"])}
        processes: list[asyncio.subprocess.Process] = []
        try:
            for _ in range(count):
                process = await asyncio.create_subprocess_exec(
                    str(DBNOTIFY),
                    "worker",
                    "-c",
                    str(path),
                    cwd=ROOT,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                _LIVE[process.pid] = "dbnotify worker"
                processes.append(process)
            for process in processes:
                await _ready(process)
            yield words
        finally:
            for process in processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
            for process in processes:
                assert process.stderr is not None
                with contextlib.suppress(TimeoutError):
                    rest = await asyncio.wait_for(process.stderr.read(), timeout=15)
                    # its exit as asyncio sees it: a terminate() now would reap it first
                    # (Popen polls before it signals), and asyncio would say "Unknown child"
                    await asyncio.wait_for(process.wait(), timeout=15)
                    lines = rest.decode(errors="replace").strip().splitlines()
                    words.append(lines[-1] if lines else f"exit status {process.returncode}")
                await _stop(process)


async def _ready(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    seen: list[bytes] = []
    while True:
        try:
            line = await asyncio.wait_for(process.stderr.readline(), timeout=30)
        except TimeoutError:
            line = b""
        if not line:
            said = b"".join(seen[-5:]).decode(errors="replace").strip()
            raise RuntimeError(f"dbnotify worker did not start: {said or 'no output'}")
        seen.append(line)
        if READY in line:
            return
