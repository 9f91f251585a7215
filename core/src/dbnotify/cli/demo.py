"""``dbnotify demo``: every event, end to end, to an embedded SMTP server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dbnotify.cli._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE


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
