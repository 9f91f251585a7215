"""What ``dbnotify plugins`` prints: the table of the channel types installed.

The console script prints the listing without click (:mod:`dbnotify.cli.script`), so
this module imports neither click nor the plugin registry (attrs, pluggy): only
:mod:`dbnotify.installed` and a few modules of the standard library. Its styles are
click's own codes, so that the click command prints the same lines.
"""

from __future__ import annotations

import os
import sys

from dbnotify.installed import GROUP, Choice, declared

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing would cost a fresh process more than the listing
    from collections.abc import Mapping, Sequence

BOLD, RED, YELLOW = "1", "31", "33"
"""The SGR codes ``click.style`` writes for ``bold=True``, ``fg="red"``, ``fg="yellow"``."""
RESET = "\x1b[0m"
NONE_INSTALLED = "no channel types installed; plugins such as dbnotify-email provide them"


def style(text: str, code: str) -> str:
    """``click.style(text, ...)`` for one of the codes above (reset included)."""
    return f"\x1b[{code}m{text}{RESET}"


def table(rows: Sequence[tuple[str, str, str, str]]) -> list[str]:
    """``type distribution version description`` in columns, the description wrapped to
    the terminal's width (80 columns when the output is not a terminal)."""
    import textwrap

    header = ("type", "distribution", "version", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    indent = 1 + sum(w + 2 for w in widths)
    room = max(20, terminal_columns() - indent - 1)
    lines = []
    for number, row in enumerate([header, *rows]):
        start = " " + "".join(cell.ljust(w + 2) for cell, w in zip(row[:3], widths, strict=True))
        wrapped = textwrap.wrap(row[3], room, break_on_hyphens=False) or [""]
        text = (start + wrapped[0]).rstrip()
        lines.append(style(text, BOLD) if number == 0 else text)
        lines.extend(" " * indent + more for more in wrapped[1:])
    return lines


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing shutil (and with it re,
    fnmatch, bz2 and lzma): ``COLUMNS`` when a positive number, else the width of the
    terminal on ``sys.__stdout__``, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        size = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80
    return size.columns or 80


def installed_lines(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every line of ``dbnotify plugins`` (without options), styled as click styles them:
    what the distributions' metadata declares, no plugin imported; then the channel
    types the environment skips, and the names in it that no plugin provides."""
    choice = Choice(os.environ if environ is None else environ)
    found = sorted(declared(GROUP), key=lambda d: d.name)  # stable: duplicates keep order
    rows: list[tuple[str, str, str, str]] = []
    skipped: dict[str, str] = {}
    for item in found:
        reason = choice.skip_reason(item.name)
        if reason is None:
            rows.append((item.name, *item.meta()))
        else:
            skipped.setdefault(item.name, reason)
    lines = table(rows) if rows else [] if skipped else [NONE_INSTALLED]
    lines += [f"skipped {name}: {why}" for name, why in skipped.items()]
    problems = choice.problems(item.name for item in found)
    lines += [f"{style('warning', YELLOW)}: {problem}" for problem in problems]
    return lines
