"""The outbox's commands: ``worker``, ``outbox``, ``history``, ``retry``, ``purge``.

Each needs an ``[outbox]`` in the configuration file. Output is plain lines that name
the delivery (``#12``), so that ``dbnotify retry 12`` can follow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dbnotify.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    describe_row,
    run_and_close,
    usage,
    when,
)
from dbnotify.humanize import count
from dbnotify.outbox.defaults import CONCURRENCY, STOP_GRACE
from dbnotify.outbox.model import RecipientState

# As in every command module: what a command needs (asyncio, the configuration, the store) is
# imported when it runs, so that ``dbnotify --help`` stays light.
if TYPE_CHECKING:
    from dbnotify.notifier import Notifier
    from dbnotify.outbox.model import HistoryRow
    from dbnotify.outbox.store import OutboxStore

T = TypeVar("T")


def durable_notifier(path: Path) -> Notifier:
    from dbnotify.config.load import load_config
    from dbnotify.errors import ConfigError
    from dbnotify.notifier import Notifier

    try:
        config = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    if config.outbox is None:
        usage(f'{path} has no [outbox]; add one, e.g. [outbox] path = "/var/lib/dbnotify.sqlite"')
    return Notifier(config)


def ask(store: OutboxStore, coro: Coroutine[Any, Any, T]) -> T:
    """Run store operations on an event loop of their own; close the store after."""
    import asyncio

    async def body() -> T:
        try:
            return await coro
        finally:
            await store.aclose()

    return asyncio.run(body())


@click.command()
@config_option
@click.option("--drain", is_flag=True, help="stop when nothing is due (retries later stay)")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=CONCURRENCY,
    show_default=True,
    help="attempts in flight at once",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=STOP_GRACE,
    show_default=True,
    help="on SIGTERM, seconds the attempts in flight get to finish before their leases "
    "go back to the outbox",
)
def worker(config_path: Path, drain: bool, concurrency: int, grace: float) -> None:
    """Deliver from the outbox until stopped (SIGTERM, Ctrl-C), or drained.

    On SIGTERM it claims nothing more, lets what is in flight finish within --grace
    seconds, and gives back the leases of the rest, so another worker takes them at once.
    """
    import asyncio
    import signal

    from dbnotify.outbox.worker import Worker

    notifier = durable_notifier(config_path)
    assert notifier.outbox is not None
    runner = Worker(notifier.outbox, notifier.deliverer, concurrency=concurrency, grace=grace)

    async def body() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if runner.stopping:  # a second signal: stop now, leases run out
                task.cancel()
                return
            click.echo(
                f"worker {runner.owner}: stopping; attempts in flight get {runner.grace:g}s "
                "to finish (signal again to stop at once)",
                err=True,
            )
            runner.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        counts = await runner.store.counts()
        total = counts["due"]
        click.echo(f"worker {runner.owner}: {counts['pending']} pending, {total} due now", err=True)
        if total > 50 and sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=False) as progress:
                bar = progress.add_task("delivering", total=total)
                await runner.run(drain=drain, on_attempt=lambda _c, _s: progress.advance(bar))
        else:
            await runner.run(drain=drain)

    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        run_and_close(notifier, body())
    gave_back = (
        f"; gave back {count(runner.released, 'delivery', 'deliveries')} not finished in time"
        if runner.released
        else ""
    )
    click.echo(f"worker stopped after {count(runner.attempted, 'attempt')}{gave_back}", err=True)


@click.command("outbox")
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def outbox_command(config_path: Path, as_json: bool) -> None:
    """What is waiting (pending) and what gave up (dead), with reasons; parked channels."""
    from dbnotify.errors import OutboxError
    from dbnotify.outbox.model import Parked
    from dbnotify.outbox.worker import fingerprint

    notifier = durable_notifier(config_path)
    assert notifier.outbox is not None
    store = notifier.outbox

    async def query() -> tuple[list[str], list[HistoryRow], list[HistoryRow], dict[str, Parked]]:
        # as a worker would at its start: a channel whose configuration changed since it
        # was parked goes again, so that this shows the state as it is, not as it was
        fingerprints = {n: fingerprint(c) for n, c in notifier.config.channels.items()}
        return (
            await store.unpark_changed(fingerprints),
            await store.history(status=RecipientState.PENDING, limit=10_000),
            await store.history(status=RecipientState.DEAD, limit=10_000),
            await store.parked(),
        )

    try:
        unparked, pending, dead, parked = ask(store, query())
    except OutboxError as exc:
        usage(str(exc))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "pending": [r.as_dict() for r in pending],
                    "dead": [r.as_dict() for r in dead],
                    "parked": {
                        c: {"reason": why, "since": when(at)} for c, (why, at) in parked.items()
                    },
                    "unparked": unparked,
                },
                indent=2,
            )
        )
        return
    for channel in unparked:
        click.echo(
            f"channel {channel}: its configuration changed since it was parked; its queue "
            "goes again (a running worker sends it)"
        )
    for channel, (why, at) in parked.items():
        click.echo(
            f"channel {channel} is PARKED since {when(at)}: {why}; fix its "
            f"configuration, or run: dbnotify retry --channel {channel}"
        )
    click.echo(f"{len(pending)} pending, {len(dead)} dead")
    for row in [*pending, *dead]:
        click.echo("  " + describe_row(row))


def _parse_time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        usage(f"{name} must be ISO 8601, e.g. 2026-11-24T05:00:00Z (got {value!r})")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--event", "event_type", help="only this event type")
@click.option("--channel", help="only this channel")
@click.option("--recipient", help="only this recipient")
@click.option("--status", type=click.Choice([s.value for s in RecipientState]), help="only this")
@click.option("--since", help="from this time (ISO 8601; UTC if no zone)")
@click.option("--until", help="before this time (ISO 8601)")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1, max=2**63 - 1))
def history(
    config_path: Path,
    as_json: bool,
    event_type: str | None,
    channel: str | None,
    recipient: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> None:
    """Each recipient's latest outcome, newest first."""
    from dbnotify.errors import OutboxError
    from dbnotify.outbox.model import RecipientState

    notifier = durable_notifier(config_path)
    assert notifier.outbox is not None
    try:
        rows = ask(
            notifier.outbox,
            notifier.outbox.history(
                event_type=event_type,
                channel=channel,
                recipient=recipient,
                status=RecipientState(status) if status is not None else None,
                since=_parse_time(since, "--since"),
                until=_parse_time(until, "--until"),
                limit=limit,
            ),
        )
    except OutboxError as exc:
        usage(str(exc))
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    for row in rows:
        click.echo(describe_row(row))


@click.command()
@config_option
@click.argument("delivery_id", required=False, type=click.IntRange(min=1, max=2**63 - 1))
@click.option("--dead", is_flag=True, help="every delivery with a dead recipient")
@click.option("--channel", help="every delivery of this channel; unparks it")
def retry(config_path: Path, delivery_id: int | None, dead: bool, channel: str | None) -> None:
    """Make deliveries due again now, for a running worker to send: one delivery (ID),
    every one with a dead recipient, or a (parked) channel's, which it unparks."""
    from dbnotify.errors import OutboxError

    if delivery_id is None and not dead and channel is None:
        usage("name a delivery ID, or use --dead or --channel NAME")
    notifier = durable_notifier(config_path)
    store = notifier.outbox
    assert store is not None

    async def body() -> int:
        if delivery_id is not None and not await store.history(delivery_ids=[delivery_id]):
            usage(f"no delivery #{delivery_id} in the outbox; `dbnotify outbox` lists them")
        known = channel is None or channel in notifier.config.channels
        if not known and not await store.history(channel=channel, limit=1):
            usage(
                f"no channel named {channel!r} in {config_path} or in the outbox (configured: "
                f"{', '.join(notifier.config.channels) or 'none'})"
            )
        return await store.retry(delivery_id=delivery_id, dead=dead, channel=channel)

    try:
        made = ask(store, body())
    except OutboxError as exc:
        usage(str(exc))
    it = "it" if made == 1 else "them"
    click.echo(
        f"{count(made, 'delivery', 'deliveries')} due again now; a running worker sends {it} "
        f"(dbnotify worker -c {config_path})"
        + ("" if channel is None else f"; channel {channel} is no longer parked")
    )
    sys.exit(EXIT_OK if made or channel else EXIT_FAILED)


@click.command()
@config_option
@click.option("--older-than", help='e.g. "30d" (default: the outbox\'s retention)')
def purge(config_path: Path, older_than: str | None) -> None:
    """Forget finished notifications older than a duration (pending ones are kept)."""
    from dbnotify.config.fields import parse_duration
    from dbnotify.errors import OutboxError

    notifier = durable_notifier(config_path)
    assert notifier.outbox is not None
    assert notifier.config.outbox is not None
    try:
        seconds = (
            parse_duration(older_than)
            if older_than is not None
            else notifier.config.outbox.retention
        )
    except ValueError as exc:
        usage(f"--older-than {exc}")
    try:
        purged = ask(notifier.outbox, notifier.outbox.purge(seconds))
    except OutboxError as exc:
        usage(str(exc))
    click.echo(f"purged {count(purged, 'notification')} older than {seconds:g}s")
