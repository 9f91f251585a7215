"""The ``dbnotify`` command.

Exit codes: 0 all delivered (or nothing to do by the configuration's rules), 1 a
delivery or test failed, or no channel is configured for the event, 2 configuration or
usage error.

The console script is :func:`dbnotify.cli.script.run`: ``dbnotify plugins`` alone is
printed there without click (:mod:`dbnotify.cli.listing`), everything else goes to the
click group :data:`main` (:mod:`dbnotify.cli.group`), imported on first use of the name.
Each command lives in a module of its group (``plugins``, ``check``, ``send``,
``outbox``, ``mute``, ``serve``, ``demo``), imported only when that command runs or
help lists it, so that a light command does not pay for Jinja2, cattrs, asyncio or any
plugin.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # this package is imported by the console script: no typing, no click
    from collections.abc import Mapping

    import click

    from dbnotify.cli.group import main as main

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


def __getattr__(name: str) -> click.Group:
    if name != "main":
        raise AttributeError(f"module 'dbnotify.cli' has no attribute {name!r}")
    from dbnotify.cli.group import main

    globals()["main"] = main  # later lookups do not come back here
    return main
