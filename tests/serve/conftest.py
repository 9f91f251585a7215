"""``dbnotify serve`` as a user runs it: the installed command in a process of its own,
on 127.0.0.1 and a free port, with a real aiosmtpd behind its email channel.

``nox -s serve`` runs this folder (it needs the ``serve`` extra, schemathesis,
Playwright and Debian's chromium); ``pytest tests`` leaves it alone unless it is named
on the command line (``pytest tests/serve``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from dbnotify.testing.smtpd import LocalSMTPServer

HERE = Path(__file__).resolve().parent
DBNOTIFY = str(Path(sys.executable).with_name("dbnotify"))

SEND_TOKEN = "send-token-0123456789abcdefghij"
READ_TOKEN = "read-token-0123456789abcdefghij"
ADMIN_TOKEN = "admin-token-0123456789abcdefghij"
TOKENS = f"""
[serve.tokens.dbackup]
secret = {{ env = "TEST_SEND_TOKEN" }}
scopes = ["send"]

[serve.tokens.reader]
secret = "{READ_TOKEN}"
scopes = ["read"]

[serve.tokens.admin]
secret = {{ env = "TEST_ADMIN_TOKEN" }}
scopes = ["admin"]
"""
"""Three tokens, one per scope; two come from the environment, as they should."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect this folder only when it (or a file in it) is named on the command line."""
    for arg in config.args:
        named = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if named == HERE or HERE in named.parents:
            return None
    return True


@attrs.frozen
class Served:
    """A running ``dbnotify serve``: its URL, its configuration file and its output."""

    url: str
    config: Path
    process: subprocess.Popen[str] = attrs.field(repr=False)
    log: Path

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=bearer(token), timeout=30)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header of ``token`` (none for ``None``)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def server_env() -> dict[str, str]:
    return {**os.environ, "TEST_SEND_TOKEN": SEND_TOKEN, "TEST_ADMIN_TOKEN": ADMIN_TOKEN}


def start_server(config: Path, *, env: dict[str, str] | None = None) -> Served:
    """Start ``dbnotify serve -c config --listen 127.0.0.1:0`` and wait for its URL."""
    log = config.with_suffix(".log")
    out = log.open("w", encoding="utf-8")
    process = subprocess.Popen(
        [DBNOTIFY, "serve", "-c", str(config), "--listen", "127.0.0.1:0"],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or server_env(),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"serving on (http://\S+)", log.read_text(encoding="utf-8"))
        if found:
            return Served(found[1], config, process, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"dbnotify serve did not start:\n{log.read_text(encoding='utf-8')}")


def email_config(tmp_path: Path, smtp_port: int, *, extra: str = "", outbox: str = "") -> Path:
    """A configuration with an outbox, an email channel to a local server, and tokens;
    ``outbox`` adds lines to ``[outbox]``, ``extra`` to the file."""
    path = tmp_path / "dbnotify.toml"
    path.write_text(
        f"""# dbnotify for DBackup (a comment the console must keep)
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com"]

[routing]
channels = ["ops-mail"]

[outbox]
path = "{tmp_path / "outbox.sqlite"}"
{outbox}
{TOKENS}
{extra}""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def smtp() -> AsyncIterator[LocalSMTPServer]:
    async with LocalSMTPServer() as server:
        yield server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start servers for a test (``serve(config_path)``); each is stopped after it."""
    started: list[Served] = []

    def start(config: Path, **kwargs: object) -> Served:
        served = start_server(config, **kwargs)  # type: ignore[arg-type]
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
async def served(smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]) -> Served:
    """A server with one email channel (``ops-mail``) to ``smtp``, and an outbox."""
    return serve(email_config(tmp_path, smtp.port))
