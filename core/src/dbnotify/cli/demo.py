"""``dbnotify demo``: every event, end to end, to an embedded SMTP server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dbnotify.cli._common import EXIT_FAILED, EXIT_OK, usage


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dbnotify-demo"),
    show_default=True,
    help="folder for the received messages",
)
def demo(out: Path) -> None:
    """Send one of each event through the real pipeline to an embedded SMTP server."""
    from dbnotify.plugins import default_registry

    registry = default_registry()
    if registry.get("email") is None:
        installed = "email" in registry.types() or "email" in registry.skipped()
        usage(
            "the demo needs the email channel: "
            + (registry.explain_missing("email") if installed else "pip install dbnotify-email")
        )
    try:
        from dbnotify.demo import run
    except ImportError as exc:
        usage(f"the demo needs aiosmtpd ({exc}); pip install 'dbnotify[demo]'")
    sys.exit(EXIT_OK if run(out) else EXIT_FAILED)
