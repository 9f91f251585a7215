"""What the commands share: exit codes, the ``--config`` option, and the printers.

Imports only click at module level (what a command needs, it imports when it runs), so
that ``dbnotify plugins`` and ``--help`` stay light.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from dbnotify.config.model import Config
    from dbnotify.errors import ConfigError
    from dbnotify.notifier import Notifier
    from dbnotify.outbox.model import HistoryRow
    from dbnotify.results import DispatchResult, RecipientResult, TestReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the TOML configuration file",
)


def fail_config(exc: ConfigError) -> NoReturn:
    click.echo(str(exc), err=True)
    sys.exit(EXIT_USAGE)


def load(path: Path) -> Config:
    """The configuration at ``path``; every problem printed and exit 2 when invalid."""
    from dbnotify.config.load import load_config
    from dbnotify.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        fail_config(exc)


def describe_recipient(r: RecipientResult) -> str:
    from dbnotify.results import Status

    status = r.status.value + (f" ({r.kind.value})" if r.kind else "")
    parts = [status]
    if r.reason:
        parts.append(r.reason)
    if r.reply and r.status is not Status.DELIVERED:
        parts.append(f"server said: {r.reply}")
    line = " - ".join(parts)
    return line + (f"\n      hint: {r.hint}" if r.hint else "")


def print_result(result: DispatchResult) -> None:
    click.echo(f"event {result.event_type} (notification {result.notification_id})")
    if result.reason:
        click.echo(f"  not sent: {result.reason}")
    for channel in result.channels:
        who = "user copy" if channel.target.value == "user" else "channel"
        for r in channel.recipients:
            click.echo(f"  {channel.channel} [{who}] {r.recipient}: {describe_recipient(r)}")


def print_report(channel: str, report: TestReport) -> None:
    for stage in report.stages:
        mark = "ok  " if stage.ok else "FAIL"
        click.echo(f"  {mark} {stage.name:<8} {stage.duration * 1000:7.1f} ms  {stage.detail}")
        if stage.hint:
            click.echo(f"       hint: {stage.hint}")
    for r in report.deliveries:
        click.echo(f"  {r.recipient}: {describe_recipient(r)}")
    verdict = "passed" if report.ok else "FAILED"
    click.echo(f"test of channel {channel!r} {verdict}")


def usage(message: str) -> NoReturn:
    """``error: MESSAGE`` on stderr, exit 2: the command line or the file is wrong."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


class _OneLine(logging.Formatter):
    """``error: channel 'x': plugin 'y' raised ...``: no traceback unless asked (-v)."""

    def __init__(self, tracebacks: bool) -> None:
        super().__init__("%(levelname)s: %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        if self.tracebacks or not record.exc_info:
            return super().format(record)
        text = record.getMessage() + " (run with -v for the traceback)"
        return f"{record.levelname}: {text}"


def configure_logging(verbosity: int) -> None:
    """What the command logs on stderr: errors in one line by default (the results are
    printed already); ``-v`` adds each outcome and tracebacks; ``-vv`` debug."""
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(tracebacks=verbosity > 0))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # psycopg sets its own WARNING level unless one is set: its pool's retries would be
    # said before, and beside, the outbox's one error that names the cause
    logging.getLogger("psycopg").setLevel(level)


def when(ts: float | None) -> str:
    """A stored time as ISO 8601 in UTC, to the second; ``-`` for none."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def describe_row(row: HistoryRow) -> str:
    """``#12 backup_failure ops-mail ops@example.com: dead (permanent) - reason``."""
    from dbnotify.outbox.model import RecipientState
    from dbnotify.results import Target

    who = "user copy " if row.target == Target.USER.value else ""
    delivered = row.status == RecipientState.DELIVERED
    state = row.status + (f" ({row.kind})" if row.kind and not delivered else "")
    parts = [state]
    if row.reason:  # a delivered one's says how: "sent in a group of 200 ..."
        parts.append(row.reason)
    if row.reply and not delivered:
        parts.append(f"server said: {row.reply}")
    if row.status == RecipientState.PENDING and row.next_at is not None:
        parts.append(f"next attempt {when(row.next_at)}")
    if row.status == RecipientState.PENDING and (row.held_until or 0) > time.time():
        parts.append(
            f"held by worker {row.held_by} until {when(row.held_until)} (if that worker is "
            "gone, it goes again then)"
        )
    line = (
        f"#{row.delivery_id} {row.event_type} {row.channel} {who}{row.recipient}: "
        + " - ".join(parts)
        + f" [attempts {row.attempts}, {when(row.at)}]"
    )
    if row.hint and row.status in (RecipientState.DEAD, RecipientState.PENDING):
        line += f"\n      hint: {row.hint}"
    return line


def run_and_close(notifier: Notifier, coro: Any) -> Any:
    """Run ``coro`` on an event loop of its own, then close the notifier; an outbox that
    fails is ``error: ...`` and exit 1."""
    import asyncio

    from dbnotify.errors import OutboxError

    async def body() -> Any:
        try:
            return await coro
        finally:
            await notifier.aclose()
            if notifier.outbox is not None:  # the command's own: its writer process too
                await notifier.outbox.aclose()

    try:
        return asyncio.run(body())
    except OutboxError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
