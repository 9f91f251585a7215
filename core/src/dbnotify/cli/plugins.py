"""``dbnotify plugins`` and ``dbnotify schema``: what channel types are installed.

``plugins`` reads the installed distributions' metadata and imports no plugin (unless
``--check`` or ``--json``): its lines are :func:`dbnotify.cli.listing.installed_lines`,
which the console script prints without click (the command whose start-up is measured).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from dbnotify import humanize
from dbnotify.cli._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from dbnotify.cli.listing import NONE_INSTALLED, RED, YELLOW, installed_lines, style, table

if TYPE_CHECKING:
    from dbnotify.plugins import PluginRegistry


@click.command()
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
    if not (check or as_json):
        for line in installed_lines():
            click.echo(line)
        return
    from dbnotify.plugins import default_registry

    registry = default_registry()
    if as_json:
        _plugins_json(registry, check)
        return
    loaded = registry.all()
    rows = [(p.type, p.distribution, p.version, p.info.description) for p in loaded]
    skipped = registry.skipped()
    if rows:
        for line in table(rows):
            click.echo(line)
    elif not registry.failures and not skipped:
        click.echo(NONE_INSTALLED)
    for f in registry.failures:
        click.echo(f"{style('failed', RED)} {f.name} ({f.distribution} {f.version}): {f.error}")
    for name, why in skipped.items():
        click.echo(f"skipped {name}: {why}")
    for problem in registry.environment_problems():
        click.echo(f"{style('warning', YELLOW)}: {problem}")
    count = len(rows) + len(registry.failures)
    click.echo(
        f"checked {humanize.count(count, 'plugin')}: {len(rows)} loaded, "
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
    report = {
        "channels": found,
        "failed": failed,
        "skipped": skipped,
        "warnings": registry.environment_problems(),
    }
    click.echo(json.dumps(report, indent=2))
    if check and failed:
        sys.exit(EXIT_FAILED)


@click.command()
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
