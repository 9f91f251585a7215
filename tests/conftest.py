"""Cross-package tests: the installed ``dbnotify`` command against real local servers."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import attrs
import pytest

from dbnotify.testing import postgres as pg
from dbnotify.testing.smtpd import LocalSMTPServer

DBNOTIFY = str(Path(sys.executable).with_name("dbnotify"))


@attrs.frozen
class Run:
    code: int
    out: str
    err: str


async def _cli(*args: str, env: dict[str, str] | None = None) -> Run:
    """Run the installed console script without blocking the loop the server runs on."""
    proc = await asyncio.create_subprocess_exec(
        DBNOTIFY, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def smtp() -> AsyncIterator[LocalSMTPServer]:
    async with LocalSMTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Server]:
    """A throwaway PostgreSQL on 127.0.0.1 for the session (``dbnotify.testing.postgres``).

    Skips when PostgreSQL or psycopg is missing, but fails when ``CI`` is set: CI must
    never skip these tests silently.
    """
    try:
        server = pg.start()
    except pg.Unavailable as missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (CI is set: this test must run, not skip)", pytrace=False)
        pytest.skip(str(missing))
    with server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(
    path: Path, port: int, *, extra: str = "", to: str = '["ops@example.com"]', auth: str = ""
) -> Path:
    path.write_text(
        f"""
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = {to}
{auth}

[routing]
channels = ["ops-mail"]
{extra}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli() -> Callable[..., Awaitable[Run]]:
    """``await cli("send", ...)``: the installed ``dbnotify`` command, as a subprocess."""
    return _cli


@pytest.fixture
def write_config() -> Callable[..., Path]:
    """Write a one-channel email configuration pointing at 127.0.0.1:PORT."""
    return _write_config
