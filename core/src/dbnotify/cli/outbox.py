"""The outbox's commands: ``worker``, ``outbox`` (``outbox init``, ``outbox copy``),
``history``, ``retry``, ``purge``.

Each needs an ``[outbox]`` in the configuration file. Output is plain lines that name
the delivery (``#12``), so that ``dbnotify retry 12`` can follow.
"""

from __future__ import annotations

import contextlib
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
    load,
    run_and_close,
    usage,
    when,
)
from dbnotify.humanize import count
from dbnotify.outbox.defaults import CONCURRENCY, POSTGRES_CONCURRENCY, STOP_GRACE
from dbnotify.outbox.model import RecipientState

# As in every command module: what a command needs (asyncio, the configuration, the store) is
# imported when it runs, so that ``dbnotify --help`` stays light.
if TYPE_CHECKING:
    from dbnotify.config.model import OutboxSettings, Writer
    from dbnotify.notifier import Notifier
    from dbnotify.outbox.model import HistoryRow
    from dbnotify.outbox.store import OutboxStore

T = TypeVar("T")


def durable_notifier(path: Path, *, default_writer: Writer | None = None) -> Notifier:
    """The notifier of the configuration at ``path``, which must have an ``[outbox]``;
    its store's writer, unless the file names one, ``default_writer`` (else a thread)."""
    from dbnotify.config.load import load_config
    from dbnotify.errors import ConfigError
    from dbnotify.notifier import Notifier
    from dbnotify.outbox.store import open_store

    try:
        config = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    if config.outbox is None:
        usage(f'{path} has no [outbox]; add one, e.g. [outbox] path = "/var/lib/dbnotify.sqlite"')
    if default_writer is None:
        return Notifier(config)
    return Notifier(config, outbox=open_store(config.outbox, default_writer=default_writer))


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
    help=f"attempts in flight at once  [default: {CONCURRENCY}; {POSTGRES_CONCURRENCY} on "
    "PostgreSQL]",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=STOP_GRACE,
    show_default=True,
    help="on SIGTERM, seconds the attempts in flight get to finish before their leases "
    "go back to the outbox",
)
def worker(config_path: Path, drain: bool, concurrency: int | None, grace: float) -> None:
    """Deliver from the outbox until stopped (SIGTERM, Ctrl-C), or drained.

    On SIGTERM it claims nothing more, lets what is in flight finish within --grace
    seconds, and gives back the leases of the rest, so another worker takes them at once.
    """
    import asyncio
    import signal

    from dbnotify.config.model import Writer
    from dbnotify.outbox.worker import Worker

    # a worker lives to deliver: a SQLite file's work in a process of its own unless
    # [outbox] writer says otherwise (docs/outbox.md#a-writer-process)
    notifier = durable_notifier(config_path, default_writer=Writer.PROCESS)
    assert notifier.outbox is not None
    runner = Worker(notifier.outbox, notifier.deliverer, grace=grace)
    if concurrency is not None:  # else the store's own (64; 128 on PostgreSQL)
        runner.concurrency = concurrency

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


@click.group("outbox", invoke_without_command=True)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the TOML configuration file",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def outbox_command(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """What is waiting (pending) and what gave up (dead), with reasons; parked channels.

    With a command: create or migrate the outbox's tables (init), or copy a SQLite
    outbox into PostgreSQL (copy).
    """
    if ctx.invoked_subcommand is not None:
        if config_path is not None:  # dbnotify outbox -c FILE init: the command's -c
            ctx.default_map = {
                name: {"config_path": str(config_path)} for name in outbox_command.commands
            }
        return
    if config_path is None:
        raise click.UsageError("Missing option '-c' / '--config'.", ctx)
    _list(config_path, as_json)


def _list(config_path: Path, as_json: bool) -> None:
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


def _outbox_settings(path: Path) -> OutboxSettings:
    config = load(path)
    if config.outbox is None:
        usage(f'{path} has no [outbox]; add one, e.g. [outbox] path = "/var/lib/dbnotify.sqlite"')
    return config.outbox


@outbox_command.command("init")
@config_option
def init(config_path: Path) -> None:
    """Create the outbox's tables, or migrate them to this dbnotify's schema, now.

    Workers and producers do it on first use too; run it to do it on purpose (a
    PostgreSQL outbox: as a user allowed to create the schema), and to see the version.
    """
    import asyncio

    from dbnotify.errors import OutboxError
    from dbnotify.outbox.store import open_store

    settings = _outbox_settings(config_path)
    where = settings.where + (f" (schema {settings.schema})" if settings.url else "")

    async def body() -> tuple[int, int]:
        store = open_store(settings)
        try:
            return await _init(store)
        finally:
            await store.aclose()

    try:
        found, latest = asyncio.run(body())
    except OutboxError as exc:
        usage(str(exc))
    if found == 0:
        done = f"created, schema version {latest}"
    elif found == latest:
        done = f"already at schema version {latest}"
    else:
        done = f"migrated from {found} to {latest}"
    click.echo(f"outbox {where}: {done}")


async def _init(store: OutboxStore) -> tuple[int, int]:
    """The schema version ``store`` had, and the one it has now."""
    from dbnotify.outbox.sqlite import SQLiteStore
    from dbnotify.outbox.sqlite import schema as sqlite_schema

    if isinstance(store, SQLiteStore):
        return await store.init(), sqlite_schema.LATEST
    from dbnotify.outbox.postgres import PostgresStore
    from dbnotify.outbox.postgres import schema as postgres_schema

    assert isinstance(store, PostgresStore)
    return await store.init(), postgres_schema.LATEST


def _libpq_has_password(url: str) -> bool:
    """Whether libpq finds a password of its own: in the URL, PGPASSWORD, or a
    password file (PGPASSFILE, else ~/.pgpass)."""
    import os
    import urllib.parse

    try:
        in_url = urllib.parse.urlsplit(url).password is not None
    except ValueError:
        in_url = False
    passfile = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    return in_url or "PGPASSWORD" in os.environ or passfile.is_file()


def _without_password(url: str) -> str:
    """``url`` as it goes in the configuration: its password (if any) left out."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}@{host}"))


@outbox_command.command("copy")
@config_option
@click.option(
    "--to",
    "url",
    required=True,
    metavar="URL",
    help="the PostgreSQL outbox, e.g. postgresql://dbnotify@db.internal:5432/dbnotify",
)
@click.option(
    "--password-env",
    metavar="NAME",
    help="the environment variable that holds its password (default: what libpq finds, "
    "PGPASSWORD or ~/.pgpass)",
)
@click.option("--schema", help="the schema of its tables (default: [outbox] schema)")
def copy(config_path: Path, url: str, password_env: str | None, schema: str | None) -> None:
    """Move the SQLite outbox ([outbox] path) into an empty PostgreSQL outbox: pending,
    parked and dead work, and the history; once, in one transaction.

    Stop the workers (and whatever sends) first: a delivery leased to a running worker
    is refused. Delivery ids stay as they are. The SQLite file is left unchanged.
    """
    import asyncio
    import os

    import attrs

    from dbnotify.errors import OutboxError
    from dbnotify.secrets import Secret, redacted_url

    settings = _outbox_settings(config_path)
    if settings.path is None:
        usage(
            f"{config_path}: [outbox] is PostgreSQL already ({settings.where}); copy reads "
            "the SQLite outbox that [outbox] path names"
        )
    password: Secret | None = None
    if password_env is not None:
        value = os.environ.get(password_env)
        if value is None:
            usage(f"--password-env {password_env}: no such environment variable is set")
        password = Secret(value, f"env {password_env}")
    elif not _libpq_has_password(url):
        password = settings.password
    try:
        target = attrs.evolve(
            settings,
            path=None,
            url=url,
            password=password,
            schema=schema if schema is not None else settings.schema,
        )
    except ValueError as exc:
        name = "--schema" if "SQL name" in str(exc) or "pg_" in str(exc) else "--to"
        usage(f"{name} {exc}")
    try:
        from dbnotify.outbox.postgres.copy import copy_outbox
    except ImportError as exc:
        usage(
            f"copying to PostgreSQL needs psycopg, which is not installed ({exc.name}); "
            "pip install 'dbnotify[postgresql]'"
        )
    try:
        copied = asyncio.run(copy_outbox(settings.path, target))
    except OutboxError as exc:
        usage(str(exc))
    parts = [f"{copied.pending} pending", f"{copied.dead} dead"]
    if copied.parked:
        parts.append(count(copied.parked, "parked channel"))
    parts.append(count(copied.attempts, "attempt"))
    keys = [f'url = "{_without_password(url)}"']
    if target.schema != settings.schema:
        keys.append(f'schema = "{target.schema}"')
    if password_env is not None:
        keys.append(f'password = {{ env = "{password_env}" }}')
    click.echo(
        f"copied {count(copied.notifications, 'notification')} ({', '.join(parts)}) to "
        f"{redacted_url(url)} (schema {target.schema}); now set [outbox] "
        f"{', '.join(keys)} and remove path"
    )


def _parse_time(value: str | None, name: str) -> float | None:
    from dbnotify.outbox.queries import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        usage(f"{name} {exc}")


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
        from dbnotify.outbox.queries import RetryTargetMissing, check_retry_target

        try:
            await check_retry_target(
                store,
                notifier.config.channels,
                delivery_id=delivery_id,
                channel=channel,
                where=str(config_path),
            )
        except RetryTargetMissing as exc:
            lists = "; `dbnotify outbox` lists them" if exc.field == "delivery_id" else ""
            usage(f"{exc.message}{lists}")
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
