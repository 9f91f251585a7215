"""``dbnotify send`` and ``dbnotify render``: one event, delivered or only rendered."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dbnotify.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    describe_row,
    load,
    print_result,
    run_and_close,
    usage,
)
from dbnotify.events import Severity

if TYPE_CHECKING:
    from dbnotify.config.model import Config
    from dbnotify.events import Event, Notification
    from dbnotify.rendering import Renderer


def _parse_data(pairs: Sequence[str]) -> dict[str, str]:
    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value (got {pair!r})", param_hint="--data")
        data[key.strip()] = value
    return data


def _event(
    event_type: str,
    data: Sequence[str],
    user_email: str | None,
    title: str | None,
    message: str | None,
    severity: str | None,
) -> Event:
    """The event from the command line; ``--data timestamp=ISO-8601`` sets its time."""
    import datetime as dt

    from dbnotify.events import Event, Severity, User

    values = _parse_data(data)
    when = values.pop("timestamp", None)
    extra: dict[str, Any] = {}
    if when is not None:
        try:
            extra["timestamp"] = dt.datetime.fromisoformat(when)
        except ValueError:
            raise click.BadParameter(
                f"timestamp must be ISO 8601, e.g. 2026-11-24T05:00:00Z (got {when!r})",
                param_hint="--data",
            ) from None
    return Event(
        event_type,
        values,
        user=User(email=user_email) if user_email else None,
        title=title,
        message=message,
        severity=Severity(severity) if severity else None,
        **extra,
    )


event_options = [
    click.argument("event_type", metavar="EVENT"),
    click.option(
        "--data",
        "-d",
        multiple=True,
        metavar="KEY=VALUE",
        help="event data, repeatable (e.g. --data job_name=nightly-pg)",
    ),
    click.option("--title", help="title, for event types outside the catalogue"),
    click.option("--message", help="message, for event types outside the catalogue"),
    click.option(
        "--severity",
        type=click.Choice([s.value for s in Severity]),
        help="severity, for event types outside the catalogue",
    ),
]


def _with_event_options(func: Any) -> Any:
    for option in reversed(event_options):
        func = option(func)
    return func


@click.command()
@_with_event_options
@config_option
@click.option("--user-email", metavar="ADDR", help="the affected user's address")
@click.option("--no-wait", is_flag=True, help="with an [outbox]: only enqueue; a worker sends")
def send(
    event_type: str,
    data: Sequence[str],
    title: str | None,
    message: str | None,
    severity: str | None,
    config_path: Path,
    user_email: str | None,
    no_wait: bool,
) -> None:
    """Dispatch one EVENT and print what happened to each channel and recipient.

    With an [outbox], the event is committed first; then, unless --no-wait, each target
    gets its first attempt here (later retries are the worker's).
    """
    from dbnotify.errors import EventError, OutboxError
    from dbnotify.events import CATALOGUE
    from dbnotify.notifier import Notifier

    spec = CATALOGUE.get(event_type)
    if user_email is not None and not (spec and spec.user_event):
        users = ", ".join(name for name, s in CATALOGUE.items() if s.user_event)
        usage(f"--user-email is for events that concern a user ({users}); {event_type} is not one")
    notifier = Notifier(load(config_path))
    try:
        event = _event(event_type, data, user_email, title, message, severity)
        result = notifier.notify_sync(event)
    except EventError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OutboxError as exc:
        click.echo(f"error: not sent: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    print_result(result)
    if notifier.outbox is None or no_wait or not result.delivery_ids:
        sys.exit(EXIT_OK if result.ok and not result.unrouted else EXIT_FAILED)
    sys.exit(_first_attempts(notifier, result.delivery_ids))


def _first_attempts(notifier: Any, ids: tuple[int, ...]) -> int:
    """Durable send: one attempt for each queued delivery, then say where each stands."""
    from dbnotify.outbox.model import RecipientState
    from dbnotify.outbox.worker import Worker

    async def attempt() -> Any:
        await Worker(notifier.outbox, notifier.deliverer).run(only=ids)
        return await notifier.outbox.history(delivery_ids=list(ids))

    rows = run_and_close(notifier, attempt())
    click.echo("first attempts:")
    for row in rows:
        click.echo("  " + describe_row(row))
    final = (RecipientState.DELIVERED, RecipientState.SKIPPED)
    return EXIT_OK if all(r.status in final for r in rows) else EXIT_FAILED


@click.command()
@_with_event_options
@click.option(
    "--format", "fmt", type=click.Choice(["html", "text", "eml"]), default="text", show_default=True
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="use this file's rendering settings (and email sender for eml)",
)
def render(
    event_type: str,
    data: Sequence[str],
    title: str | None,
    message: str | None,
    severity: str | None,
    fmt: str,
    config_path: Path | None,
) -> None:
    """Print EVENT as it would be rendered, without sending it."""
    import jinja2

    from dbnotify.errors import EventError
    from dbnotify.events import to_notification
    from dbnotify.rendering import Renderer, template_problem

    config = load(config_path) if config_path else None
    renderer = Renderer(config.rendering if config else None)
    try:
        notification = to_notification(_event(event_type, data, None, title, message, severity))
        if fmt == "html":
            output = renderer.html(notification) + "\n"
        elif fmt == "text":
            output = f"Subject: {renderer.subject(notification)}\n\n{renderer.text(notification)}"
        else:
            output = _eml(notification, renderer, config)
    except EventError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except jinja2.TemplateError as exc:
        click.echo(f"error: rendering failed: {template_problem(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(output, nl=False)


EML_EXAMPLE = {
    "host": "localhost",
    "security": "none",
    "from": "DBackup <dbackup@example.com>",
    "to": "ops@example.com",
}
"""The email channel ``render --format eml`` shows when the file configures none."""


def _eml(notification: Notification, renderer: Renderer, config: Config | None) -> str:
    """The message the email channel would send (its ``preview`` hook): the file's first
    email channel's, or one from dbackup@example.com to ops@example.com."""
    from dbnotify.plugins import default_registry

    plugin = default_registry().get("email")
    if plugin is None:
        click.echo(
            "error: --format eml needs the email channel: pip install dbnotify-email", err=True
        )
        sys.exit(EXIT_USAGE)
    emails = [c.config for c in (config.channels.values() if config else ()) if c.type == "email"]
    channel = emails[0] if emails else plugin.validate_config(EML_EXAMPLE)
    text = plugin.preview(channel, notification, renderer)
    if text is None:
        click.echo(f"error: {plugin.distribution} cannot preview a message", err=True)
        sys.exit(EXIT_USAGE)
    return text
