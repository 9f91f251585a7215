"""The ``dbnotify`` console script: ``dbnotify plugins`` without click, the rest with it.

``dbnotify plugins`` is the command whose start-up is measured (bench scenario 4), and
importing click costs a fresh process more than three times Python's own start. So for
exactly that command line, with a plain text stdout, this prints the lines of
:func:`dbnotify.cli.listing.installed_lines` as ``click.echo`` would: each line flushed,
styles only on a terminal, a broken pipe exit 1, Ctrl-C "Aborted!" and exit 1. Anything
else (another command, an option, ``--help``, shell completion, a stdout click would
rewrap) goes to the click group, which prints the same listing through the same function.
"""

from __future__ import annotations

import errno
import io
import os
import sys

_OURS = ("\x1b[1m", "\x1b[31m", "\x1b[33m", "\x1b[0m")
"""The styles the listing writes (dbnotify.cli.listing): what click strips off a pipe."""


def run() -> None:
    """The console script's entry point."""
    if sys.argv[1:] == ["plugins"] and _plain_stdout() and not _completing() and _listing():
        return
    from dbnotify.cli.group import main

    main()


def _plain_stdout() -> bool:
    """A POSIX text stdout that click's echo would write to as it is (not ASCII)."""
    import codecs

    out = sys.stdout
    if os.name != "posix" or not isinstance(out, io.TextIOWrapper) or out.errors is None:
        return False
    try:
        return codecs.lookup(out.encoding).name != "ascii"
    except LookupError:
        return True


def _completing() -> bool:
    """Shell completion asked for (click's ``_DBNOTIFY_COMPLETE``, by any script name)."""
    return any(key.endswith("_COMPLETE") for key in os.environ)


def _listing() -> bool:
    """Print the listing; False when a line holds a style click would strip differently
    (then nothing is printed, and click prints it)."""
    from dbnotify.cli.listing import installed_lines

    try:
        lines = installed_lines()
        if not _isatty():
            for code in _OURS:
                lines = [line.replace(code, "") for line in lines]
            if any("\x1b" in line for line in lines):
                return False
        for line in lines:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # as click: exit 1, and no "Exception ignored" when Python flushes at exit
        sys.stdout = _Pacified(sys.stdout)
        sys.stderr = _Pacified(sys.stderr)
        sys.exit(1)
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\nAborted!\n")  # as click: a blank line closes the ^C echo
        sys.stderr.flush()
        sys.exit(1)
    return True


def _isatty() -> bool:
    try:
        return sys.stdout.isatty()
    except Exception:  # noqa: BLE001  as click: a stream that cannot say is no terminal
        return False


class _Pacified:
    """A stream whose flush ignores a broken pipe (click's ``_PacifyFlushWrapper``)."""

    def __init__(self, wrapped: object) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        try:
            self.wrapped.flush()  # type: ignore[attr-defined]
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, attr: str) -> object:
        return getattr(self.wrapped, attr)
