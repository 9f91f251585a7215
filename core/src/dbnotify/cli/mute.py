"""``dbnotify mute``, ``mute list``, ``unmute``: silence a channel, an event type or a
backup job for a while (planned maintenance), durably.

A mute lives in the outbox, so every worker of every host honours it; what it matches
is not sent but recorded as skipped with the mute's reason, so history still shows it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dbnotify.cli._common import EXIT_OK, config_option, usage, when
from dbnotify.cli.outbox import ask, durable_notifier
from dbnotify.outbox.model import Mute, MuteScope

MAX_MUTE = 366 * 86400.0
"""A mute longer than a year is a mistake (``--for 2y`` typed as seconds): refused."""


def _describe(mute: Mute) -> str:
    reason = f": {mute.reason}" if mute.reason else ""
    return f"mute #{mute.id}: {mute.scope} {mute.value} until {when(mute.until)}{reason}"


@click.command()
@config_option
@click.argument("action", required=False, type=click.Choice(["list"]))
@click.option("--channel", help="mute this channel")
@click.option("--event", "event_type", help="mute this event type")
@click.option("--job", help="mute this backup job's events")
@click.option("--for", "duration", help='how long, e.g. "2h", "30m", "1d"')
@click.option("--reason", default="", help="said in history for every delivery it skips")
@click.option("--json", "as_json", is_flag=True, help="with list: machine-readable output")
def mute(
    config_path: Path,
    action: str | None,
    channel: str | None,
    event_type: str | None,
    job: str | None,
    duration: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Mute a channel, an event type or a job for a while: what it matches is skipped,
    with the reason, in history (needs [outbox]). `dbnotify mute list`: the mutes in
    force."""
    if action == "list":
        if channel or event_type or job or duration or reason:
            usage("mute list takes no --channel, --event, --job, --for or --reason")
        _list(config_path, as_json)
        return
    from dbnotify.config.fields import did_you_mean, parse_duration
    from dbnotify.errors import OutboxError
    from dbnotify.events import CATALOGUE

    chosen = [
        (scope, value)
        for scope, value in (
            (MuteScope.CHANNEL, channel),
            (MuteScope.EVENT, event_type),
            (MuteScope.JOB, job),
        )
        if value is not None
    ]
    if len(chosen) != 1:
        usage("name one thing to mute: --channel NAME, --event TYPE or --job NAME")
    if duration is None:
        usage("say for how long: --for DURATION, e.g. --for 2h")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        usage(f"--for {exc}")
    if seconds > MAX_MUTE:
        usage(f"--for {duration}: at most a year; a mute is for maintenance, not forever")
    ((scope, value),) = chosen
    notifier = durable_notifier(config_path)
    if scope is MuteScope.CHANNEL and value not in notifier.config.channels:
        usage(
            f"no channel named {value!r} in {config_path}"
            + did_you_mean(value, notifier.config.channels)
            + f" (configured: {', '.join(notifier.config.channels) or 'none'})"
        )
    if (
        scope is MuteScope.EVENT
        and value not in CATALOGUE
        and (hint := did_you_mean(value, CATALOGUE))
    ):
        usage(f"unknown event type {value!r}{hint} (custom event types may be muted as named)")
    store = notifier.outbox
    assert store is not None
    try:
        made = ask(store, store.mute(scope, value, duration=seconds, reason=reason))
    except OutboxError as exc:
        usage(str(exc))
    click.echo(f"{_describe(made)}; `dbnotify unmute {made.id}` ends it sooner")
    sys.exit(EXIT_OK)


def _list(config_path: Path, as_json: bool) -> None:
    """The mutes in force now."""
    from dbnotify.errors import OutboxError

    notifier = durable_notifier(config_path)
    store = notifier.outbox
    assert store is not None
    try:
        found = ask(store, store.mutes())
    except OutboxError as exc:
        usage(str(exc))
    if as_json:
        click.echo(json.dumps([m.as_dict() for m in found], indent=2))
        return
    if not found:
        click.echo("no mute in force")
    for m in found:
        click.echo(_describe(m))


@click.command()
@config_option
@click.argument("mute_id", type=click.IntRange(min=1, max=2**63 - 1))
def unmute(config_path: Path, mute_id: int) -> None:
    """End a mute now (its ID: `dbnotify mute list`)."""
    from dbnotify.errors import OutboxError

    notifier = durable_notifier(config_path)
    store = notifier.outbox
    assert store is not None
    try:
        ended = ask(store, store.unmute(mute_id))
    except OutboxError as exc:
        usage(str(exc))
    if ended is None:
        usage(f"no mute #{mute_id} in force; `dbnotify mute list` lists them")
    click.echo(f"mute #{ended.id} ({ended.scope} {ended.value}) ended; what follows is sent")
