"""The baselines, measured in the same run as the figures they stand beside.

- :func:`naive`: what a host would write without dbnotify. Per message an
  ``EmailMessage`` with ``set_content(text)`` and ``add_alternative(html)``, sent with
  aiosmtplib's ``send_message`` over ``connections`` persistent connections, each
  sending one message after the other.
- :func:`prebuilt`: aiosmtplib alone: the same message built once, ``sendmail`` of its
  bytes over the same connections (what the SMTP client costs by itself).
- :func:`smtp_source`: Postfix's ``smtp-source`` (C), where installed: the sink's and
  the loopback's ceiling.
- :func:`one_transaction`: one message to 3 recipients on a fresh connection: connect,
  greeting, EHLO, MAIL, 3 x RCPT, DATA, up to the server's reply to the data (QUIT is
  not timed, since dbnotify does not wait for it either).

Timing starts before the first connection and ends when the last message was accepted
(connections are closed afterwards, untimed), as for dbnotify.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

import aiosmtplib

from bench.report import first_reasons
from bench.servers import SMTP_SOURCE
from bench.workload import RECIPIENTS, SENDER, Content, naive_message


@dataclasses.dataclass
class Outcome:
    """A batch of messages: how long it took and what arrived."""

    messages: int
    expected: int
    """Recipients that should have been accepted."""
    delivered: int = 0
    seconds: float = 0.0
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")

    def problems(self) -> list[str]:
        found = []
        if self.delivered != self.expected:
            found.append(f"{self.delivered} of {self.expected} recipients accepted")
        if self.failures:
            found.append(f"{len(self.failures)} failures: {first_reasons(self.failures)}")
        return found


Send = Callable[[aiosmtplib.SMTP, int], Awaitable[int]]
"""Sends message ``number``; returns how many recipients were accepted."""


def _client(host: str, port: int) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname=host, port=port, use_tls=False, start_tls=False, timeout=60)


async def _batch(host: str, port: int, count: int, connections: int, send: Send) -> Outcome:
    outcome = Outcome(count, count * len(RECIPIENTS))
    numbers = iter(range(count))
    finished: list[float] = []

    async def client() -> None:
        smtp = _client(host, port)
        try:
            await smtp.connect()
            for number in numbers:
                try:
                    accepted = await send(smtp, number)  # not `+= await`: a race
                    outcome.delivered += accepted
                except aiosmtplib.SMTPException as exc:
                    outcome.failures.append(f"{type(exc).__name__}: {exc}")
                    if not smtp.is_connected:
                        await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            outcome.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            finished.append(time.perf_counter())
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                if smtp.is_connected:
                    await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    outcome.seconds = max(finished) - started
    return outcome


def _accepted(errors: dict[str, aiosmtplib.SMTPResponse], failures: list[str]) -> int:
    failures += [f"{address}: {reply.code} {reply.message}" for address, reply in errors.items()]
    return len(RECIPIENTS) - len(errors)


async def naive(host: str, port: int, count: int, content: Content, connections: int) -> Outcome:
    """Build each message with EmailMessage and send it with ``send_message``."""
    failures: list[str] = []

    async def send(smtp: aiosmtplib.SMTP, number: int) -> int:
        errors, _reply = await smtp.send_message(naive_message(content, number))
        return _accepted(errors, failures)

    outcome = await _batch(host, port, count, connections, send)
    outcome.failures += failures
    return outcome


async def prebuilt(host: str, port: int, count: int, data: bytes, connections: int) -> Outcome:
    """The same bytes every time: aiosmtplib's own cost, no message building."""
    failures: list[str] = []

    async def send(smtp: aiosmtplib.SMTP, _number: int) -> int:
        errors, _reply = await smtp.sendmail(SENDER, list(RECIPIENTS), data)
        return _accepted(errors, failures)

    outcome = await _batch(host, port, count, connections, send)
    outcome.failures += failures
    return outcome


async def one_transaction(host: str, port: int, data: bytes) -> tuple[float, int]:
    """Seconds for one 3-recipient message on a fresh connection; recipients accepted."""
    smtp = _client(host, port)
    started = time.perf_counter()
    await smtp.connect()
    try:
        errors, _reply = await smtp.sendmail(SENDER, list(RECIPIENTS), data)
        seconds = time.perf_counter() - started
    finally:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()
    return seconds, len(RECIPIENTS) - len(errors)


async def smtp_source(port: int, count: int, data: bytes, connections: int) -> Outcome | None:
    """Postfix's C client, ``connections`` sessions, connections kept (``-d``); None
    when it is not installed. The caller checks the sink's count: smtp-source says little."""
    if SMTP_SOURCE is None:
        return None
    fd, name = tempfile.mkstemp(prefix="bench-message-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.replace(b"\r\n", b"\n"))  # -F appends CRLF to every line itself
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            SMTP_SOURCE,
            "-s",
            str(connections),
            "-m",
            str(count),
            "-r",
            str(len(RECIPIENTS)),
            "-d",
            "-f",
            SENDER,
            "-t",
            RECIPIENTS[0],
            "-F",
            name,
            f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        seconds = time.perf_counter() - started
    finally:
        os.unlink(name)
    outcome = Outcome(count, count * len(RECIPIENTS), seconds=seconds)
    if process.returncode == 0:
        outcome.delivered = outcome.expected  # checked against the sink by the caller
    else:
        text = out.decode(errors="replace").strip().splitlines()
        outcome.failures.append(
            f"smtp-source exited {process.returncode}: {text[-1] if text else 'no output'}"
        )
    return outcome
