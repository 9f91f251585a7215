"""The ``dbnotify`` command.

Exit codes: 0 all delivered (or nothing to do by the configuration's rules), 1 a
delivery or test failed, or no channel is configured for the event, 2 configuration or
usage error.

Each command lives in a module of its group (``plugins``, ``check``, ``send``,
``outbox``, ``mute``, ``serve``, ``demo``), imported only when that command runs or
help lists it: only click is imported here, so that a light command (``dbnotify
plugins``) does not pay for Jinja2, cattrs, asyncio or any plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click

COMMANDS: Mapping[str, tuple[str, str]] = {
    "demo": ("dbnotify.cli.demo", "demo"),
    "history": ("dbnotify.cli.outbox", "history"),
    "mute": ("dbnotify.cli.mute", "mute"),
    "outbox": ("dbnotify.cli.outbox", "outbox_command"),
    "plugins": ("dbnotify.cli.plugins", "plugins"),
    "purge": ("dbnotify.cli.outbox", "purge"),
    "render": ("dbnotify.cli.send", "render"),
    "retry": ("dbnotify.cli.outbox", "retry"),
    "schema": ("dbnotify.cli.plugins", "schema"),
    "send": ("dbnotify.cli.send", "send"),
    "serve": ("dbnotify.cli.serve", "serve"),
    "test": ("dbnotify.cli.check", "test"),
    "unmute": ("dbnotify.cli.mute", "unmute"),
    "validate": ("dbnotify.cli.check", "validate"),
    "worker": ("dbnotify.cli.outbox", "worker"),
}
"""Every command: its name -> (module, function), imported on first use."""


class _LazyCommands(click.Group):
    """The command group; a command's module is imported only when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, name = COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), name)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dbnotify")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="more on stderr: -v each outcome and tracebacks, -vv debug (default: errors, one line)",
)
def main(verbose: int) -> None:
    """dbnotify: DBackup's notifications, routed and delivered, with a result for each."""
    from dbnotify.cli._common import configure_logging

    configure_logging(verbose)
