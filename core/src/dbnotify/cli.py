"""The ``dbnotify`` command.

Exit codes: 0 all delivered (or nothing to do), 1 a delivery or test failed,
2 configuration or usage error.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

# Only click at module level: each command imports what it needs, so that a light
# command (``dbnotify plugins``, ``--help``) does not pay for Jinja2, cattrs, asyncio or
# any plugin. The outbox's commands live in dbnotify.outbox_cli, imported when used.
if TYPE_CHECKING:
    from dbnotify.config.model import Config
    from dbnotify.errors import ConfigError
    from dbnotify.events import Event
    from dbnotify.plugins import PluginRegistry
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


def _fail_config(exc: ConfigError) -> NoReturn:
    click.echo(str(exc), err=True)
    sys.exit(EXIT_USAGE)


def _load(path: Path) -> Config:
    from dbnotify.config.load import load_config
    from dbnotify.errors import ConfigError

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


SEVERITIES = ("success", "failure", "info", "warning")
"""The values of :class:`dbnotify.events.Severity`, written out so that this module does
not import dbnotify.events (a test keeps the two the same)."""

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
        type=click.Choice(SEVERITIES),
        help="severity, for event types outside the catalogue",
    ),
]


def _with_event_options(func: Any) -> Any:
    for option in reversed(event_options):
        func = option(func)
    return func


def _describe_recipient(r: RecipientResult) -> str:
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


OUTBOX_COMMANDS: Mapping[str, str] = {
    "history": "history",
    "outbox": "outbox_command",
    "purge": "purge",
    "retry": "retry",
    "worker": "worker",
}
"""The outbox's commands: name -> its function in :mod:`dbnotify.outbox_cli`."""


class _Commands(click.Group):
    """The command group; the outbox's commands are imported only when one is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *OUTBOX_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in OUTBOX_COMMANDS and cmd_name not in self.commands:
            from dbnotify import outbox_cli

            command: click.Command = getattr(outbox_cli, OUTBOX_COMMANDS[cmd_name])
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dbnotify")
def main() -> None:
    """dbnotify: DBackup's notifications, routed and delivered, with a result for each."""


def _table(rows: Sequence[tuple[str, str, str, str]]) -> list[str]:
    """``type distribution version description`` in columns, the description wrapped to
    the terminal's width (80 columns when the output is not a terminal)."""
    header = ("type", "distribution", "version", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    indent = 1 + sum(w + 2 for w in widths)
    room = max(20, shutil.get_terminal_size().columns - indent - 1)
    lines = []
    for number, row in enumerate([header, *rows]):
        start = " " + "".join(cell.ljust(w + 2) for cell, w in zip(row[:3], widths, strict=True))
        wrapped = textwrap.wrap(row[3], room, break_on_hyphens=False) or [""]
        text = (start + wrapped[0]).rstrip()
        lines.append(click.style(text, bold=True) if number == 0 else text)
        lines.extend(" " * indent + more for more in wrapped[1:])
    return lines


@main.command()
@click.option(
    "--check",
    is_flag=True,
    help="import and validate each plugin, show those that fail to load (then exit 1)",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="machine-readable output, with each channel's schema (loads every plugin)",
)
def plugins(check: bool, as_json: bool) -> None:
    """List the channel types installed (entry-point group dbnotify.channels).

    The list comes from the installed distributions' metadata: no plugin is imported, so
    a plugin that is listed may still fail to load. --check loads each one, as a
    configuration that uses it would, and reports every failure (exit 1).
    """
    from dbnotify.plugins import default_registry

    registry = default_registry()
    if as_json:
        _plugins_json(registry, check)
        return
    if check:
        loaded = registry.all()
        rows = [(p.type, p.distribution, p.version, p.info.description) for p in loaded]
    else:
        rows = [
            (p.type, p.distribution, p.version, p.summary)
            for p in registry.installed()
            if p.allowed
        ]
    skipped = registry.skipped()
    if rows:
        for line in _table(rows):
            click.echo(line)
    elif not registry.failures and not skipped:
        click.echo("no channel types installed; plugins such as dbnotify-email provide them")
    for f in registry.failures:
        click.echo(
            f"{click.style('failed', fg='red')} {f.name} ({f.distribution} {f.version}): {f.error}"
        )
    for name, why in skipped.items():
        click.echo(f"skipped {name}: {why}")
    if check:
        count = len(rows) + len(registry.failures)
        click.echo(
            f"checked {count} plugin{'s' if count != 1 else ''}: {len(rows)} loaded, "
            f"{len(registry.failures)} failed"
        )
        sys.exit(EXIT_FAILED if registry.failures else EXIT_OK)


def _plugins_json(registry: PluginRegistry, check: bool) -> None:
    """``plugins --json``: every plugin loaded, for its schema; failures and skips too."""
    import json

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
    click.echo(json.dumps({"channels": found, "failed": failed, "skipped": skipped}, indent=2))
    if check and failed:
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("channel_type", metavar="TYPE")
def schema(channel_type: str) -> None:
    """Print the JSON Schema of a channel type's configuration (for host forms)."""
    import json

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
    from dbnotify.notifier import Notifier, run_sync

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
    from dbnotify.errors import EventError, OutboxError
    from dbnotify.notifier import Notifier

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
    from dbnotify.outbox.model import RecipientState
    from dbnotify.outbox.worker import Worker
    from dbnotify.outbox_cli import describe_row, run_and_close

    async def attempt() -> Any:
        await Worker(notifier.outbox, notifier.deliverer).run(only=ids)
        return await notifier.outbox.history(delivery_ids=list(ids))

    rows = run_and_close(notifier, attempt())
    click.echo("first attempts:")
    for row in rows:
        click.echo("  " + describe_row(row))
    final = (RecipientState.DELIVERED, RecipientState.SKIPPED)
    return EXIT_OK if all(r.status in final for r in rows) else EXIT_FAILED


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

    from dbnotify.errors import EventError
    from dbnotify.events import to_notification
    from dbnotify.rendering import Renderer, template_problem

    config = _load(config_path) if config_path else None
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


if __name__ == "__main__":  # pragma: no cover
    main()
