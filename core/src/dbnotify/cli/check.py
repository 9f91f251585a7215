"""``dbnotify validate`` and ``dbnotify test``: is the configuration right, does a channel work."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dbnotify.cli._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, config_option, load, print_report


@click.command()
@config_option
def validate(config_path: Path) -> None:
    """Check a configuration file; list every problem (exit 2) or say it is fine, with a
    warning (stderr, exit 0) for each valid setting that is likely not what was meant."""
    from dbnotify.config.load import fallback_warnings

    config = load(config_path)
    for issue in fallback_warnings(config):
        click.echo(f"{click.style('warning', fg='yellow')}: {issue}", err=True)
    names = ", ".join(f"{c.name} ({c.type})" for c in config.channels.values()) or "none"
    click.echo(f"{config_path}: OK; channels: {names}")


@click.command()
@click.argument("channel")
@config_option
@click.option("--no-send", is_flag=True, help="check the connection only; send nothing")
def test(channel: str, config_path: Path, no_send: bool) -> None:
    """Check CHANNEL stage by stage and send it a test notification."""
    from dbnotify.notifier import Notifier, run_sync

    notifier = Notifier(load(config_path))
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
