"""The ``dbnotify`` command.

Exit codes: 0 all delivered (or nothing to do), 1 a delivery or test failed,
2 configuration or usage error.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from dbnotify.config import Config, ConfigError, load_config
from dbnotify.events import Event, EventError, Severity, User, describe
from dbnotify.results import DispatchResult, RecipientResult, Status, TestReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the TOML configuration file",
)


def _fail_config(exc: ConfigError) -> NoReturn:
    click.echo(str(exc), err=True)
    sys.exit(EXIT_USAGE)


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail_config(exc)


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


def _describe_recipient(r: RecipientResult) -> str:
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
            click.echo(f"  {channel.channel} [{who}] {r.recipient}: {_describe_recipient(r)}")


def print_report(channel: str, report: TestReport) -> None:
    for stage in report.stages:
        mark = "ok  " if stage.ok else "FAIL"
        click.echo(f"  {mark} {stage.name:<8} {stage.duration * 1000:7.1f} ms  {stage.detail}")
        if stage.hint:
            click.echo(f"       hint: {stage.hint}")
    for r in report.deliveries:
        click.echo(f"  {r.recipient}: {_describe_recipient(r)}")
    verdict = "passed" if report.ok else "FAILED"
    click.echo(f"test of channel {channel!r} {verdict}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dbnotify")
def main() -> None:
    """dbnotify: DBackup's notifications, routed and delivered, with a result for each."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins(as_json: bool) -> None:
    """List the channel types found (entry-point group dbnotify.channels)."""
    from dbnotify.plugins import default_registry

    registry = default_registry()
    from dbnotify.schema import channel_schema

    found: list[dict[str, Any]] = [
        {
            "type": p.type,
            "distribution": p.distribution,
            "version": p.version,
            "description": p.info.description,
            "user_delivery": p.info.user_delivery,
            "schema": channel_schema(p.type, p.info),
        }
        for p in registry.all()
    ]
    failed: list[dict[str, Any]] = [
        {"type": f.name, "distribution": f.distribution, "version": f.version, "error": f.error}
        for f in registry.failures
    ]
    skipped: list[dict[str, Any]] = [
        {"type": name, "reason": why} for name, why in registry.skipped().items()
    ]
    if as_json:
        click.echo(json.dumps({"channels": found, "failed": failed, "skipped": skipped}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("type", "distribution", "version", "description", box=None)
    for row in found:
        table.add_row(row["type"], row["distribution"], row["version"], row["description"])
    console = Console()
    console.print(table)
    for row in failed:
        console.print(
            f"[red]failed[/red] {row['type']} ({row['distribution']} "
            f"{row['version']}): {row['error']}",
            markup=True,
            highlight=False,
        )
    for row in skipped:
        console.print(f"skipped {row['type']}: {row['reason']}", highlight=False)


@main.command()
@click.argument("channel_type", metavar="TYPE")
def schema(channel_type: str) -> None:
    """Print the JSON Schema of a channel type's configuration (for host forms)."""
    from dbnotify.plugins import default_registry
    from dbnotify.schema import channel_schema

    registry = default_registry()
    plugin = registry.get(channel_type)
    if plugin is None:
        click.echo(f"error: {registry.explain_missing(channel_type)}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(
        json.dumps(
            channel_schema(plugin.type, plugin.info),
            indent=2,
        )
    )


@main.command()
@config_option
def validate(config_path: Path) -> None:
    """Check a configuration file; list every problem (exit 2) or say it is fine."""
    config = _load(config_path)
    names = ", ".join(f"{c.name} ({c.type})" for c in config.channels.values()) or "none"
    click.echo(f"{config_path}: OK; channels: {names}")


@main.command()
@click.argument("channel")
@config_option
@click.option("--no-send", is_flag=True, help="check the connection only; send nothing")
def test(channel: str, config_path: Path, no_send: bool) -> None:
    """Check CHANNEL stage by stage and send it a test notification."""
    from dbnotify.dispatcher import Notifier, run_sync

    notifier = Notifier(_load(config_path))
    if channel not in notifier.config.channels:
        click.echo(
            f"no channel named {channel!r} in {config_path} (configured: "
            f"{', '.join(notifier.config.channels) or 'none'})",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    click.echo(f"testing channel {channel!r} ({notifier.config.channels[channel].type})")
    report = run_sync(notifier.test(channel, send_message=not no_send))
    print_report(channel, report)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


@main.command()
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
    from dbnotify.dispatcher import Notifier
    from dbnotify.outbox import OutboxError

    notifier = Notifier(_load(config_path))
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
        sys.exit(EXIT_OK if result.ok else EXIT_FAILED)
    sys.exit(_first_attempts(notifier, result.delivery_ids))


def _first_attempts(notifier: Any, ids: tuple[int, ...]) -> int:
    """Durable send: one attempt for each queued delivery, then say where each stands."""
    from dbnotify.outbox.worker import Worker
    from dbnotify.outbox_cli import describe_row, run_and_close

    run_and_close(notifier, Worker(notifier, notifier.outbox).run(only=ids))
    rows = notifier.outbox.history(delivery_ids=list(ids))
    click.echo("first attempts:")
    for row in rows:
        click.echo("  " + describe_row(row))
    return EXIT_OK if all(r.status in ("delivered", "skipped") for r in rows) else EXIT_FAILED


@main.command()
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

    from dbnotify.rendering import Renderer
    from dbnotify.rendering.renderer import template_problem

    config = _load(config_path) if config_path else None
    renderer = Renderer(config.rendering if config else None)
    try:
        notification = describe(_event(event_type, data, None, title, message, severity))
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


def _eml(notification: Any, renderer: Any, config: Config | None) -> str:
    """The message the email channel would send: the file's first email channel's, or
    one from dbackup@example.com to ops@example.com."""
    try:
        from dbnotify_email.plugin import outgoing, validate_config
    except ImportError:
        click.echo(
            "error: --format eml needs the email channel: pip install dbnotify-email", err=True
        )
        sys.exit(EXIT_USAGE)
    emails = [c.config for c in (config.channels.values() if config else ()) if c.type == "email"]
    channel = (
        emails[0]
        if emails
        else validate_config(
            {
                "host": "localhost",
                "security": "none",
                "from": "DBackup <dbackup@example.com>",
                "to": "ops@example.com",
            }
        )
    )
    return outgoing(channel, notification, renderer)[0].data.decode("utf-8")


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dbnotify-demo"),
    show_default=True,
    help="folder for the received messages",
)
def demo(out: Path) -> None:
    """Send one of each event through the real pipeline to an embedded SMTP server."""
    try:
        from dbnotify.demo import run
    except ImportError as exc:
        click.echo(
            f"error: the demo needs the email channel and aiosmtpd ({exc}); "
            "pip install 'dbnotify[demo]'",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK if run(out) else EXIT_FAILED)


def _register_outbox_commands() -> None:
    from dbnotify.outbox_cli import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_outbox_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
