"""The click group of the ``dbnotify`` command: options, help, and every command.

Imports only click here; a command's module is imported when that command runs or help
lists it (:data:`dbnotify.cli.COMMANDS`).
"""

from __future__ import annotations

import importlib

import click

from dbnotify.cli import COMMANDS


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
