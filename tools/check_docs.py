"""Check that the Markdown docs still tell the truth about the code beside them.

Docs go stale silently: a page is renamed and links to it break, the example plugin
changes and the tutorial's excerpts of it no longer match, a module or a nox session is
added and the development guide never mentions it. This tool turns each of these into a
failure that names the fix:

- every relative link under docs/ resolves, to a file and to the heading it names;
- every code block marked ``<!-- example: FILE -->`` is verbatim in the example plugin;
- the "Workspace layout" of docs/development.md names every module and sub-package of
  the core and every plugin folder, and nothing that does not exist;
- its table of ``nox`` sessions has one row per session (``nox -l --json``), no more;
- docs/api.md is what ``tools/api_reference.py`` writes from the OpenAPI document (only
  where ``dbnotify[serve]`` is importable by the same Python; elsewhere it says so).

``nox -s docs`` runs it; so can you, from anywhere: ``uv run python tools/check_docs.py``
(standard library only, but the session table needs nox importable by the same Python).
Exit status: 0 the docs are true, 1 they are not, 2 a check could not run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT = Path("docs/development.md")
"""The development guide, relative to the repository: it holds the layout and the table."""
EXAMPLE = Path("docs/examples/dbnotify-example")
"""The plugin tutorial's example plugin, which the tutorial's excerpts are copied from."""
CORE = "core/src/dbnotify/"
"""The core's package: the layout must name each of its modules and sub-packages."""
LAYOUT_HEADING = "## Workspace layout"
SESSIONS_INTRO = "`nox` sessions"
"""The table of sessions is the first table after the line starting with this."""

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_EXCERPT = re.compile(r"<!--\s*example:\s*(\S+)\s*-->")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_PLACEHOLDER = re.compile(r"<[^<>]+>")


class CannotCheck(Exception):
    """A check cannot run on this machine (nox missing): no verdict on the docs."""


# --- links and excerpts -------------------------------------------------------------


def _prose(text: str, *, inline_code: bool = False) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered; without inline code unless asked."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None:
            lines.append((number, line if inline_code else re.sub(r"`[^`]*`", "", line)))
    return lines


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page, and its explicit ``id``/``name``s."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _number, line in _prose(page.read_text(encoding="utf-8"), inline_code=True):
        found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
        heading = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading[1].replace("`", "").lower()).replace(" ", "-")
        counts[slug] = counts.get(slug, -1) + 1
        found.add(slug if counts[slug] == 0 else f"{slug}-{counts[slug]}")
    return found


def broken_links(root: Path) -> list[str]:
    """Every relative link in the Markdown under ``root`` whose file or anchor is missing."""
    problems = []
    for page in sorted(root.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for number, line in _prose(text):
            targets = [m[1] for m in _LINK.finditer(line)]
            reference = _REFERENCE.match(line)
            if reference:
                targets.append(reference[1])
            for target in targets:
                if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target):  # https:, mailto: ...
                    continue
                path, _hash, anchor = target.partition("#")
                resolved = (page.parent / path).resolve() if path else page.resolve()
                where = f"{page}:{number}: {target}"
                if not resolved.exists():
                    problems.append(f"{where}: {path} does not exist")
                elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                    problems.append(f"{where}: no heading #{anchor} in {resolved.name}")
    return problems


def stale_excerpts(root: Path, example: Path) -> list[str]:
    """Code blocks marked ``<!-- example: FILE -->`` that are not verbatim in that file."""
    problems = []
    for page in sorted(root.rglob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            marker = _EXCERPT.search(line)
            if marker is None:
                continue
            source = example / marker[1]
            start = index + 1
            if start >= len(lines) or not lines[start].startswith("```"):
                problems.append(f"{page}:{index + 1}: no code block after the example marker")
                continue
            end = next((i for i in range(start + 1, len(lines)) if lines[i] == "```"), None)
            if end is None:
                problems.append(f"{page}:{start + 1}: code block never closed")
                continue
            block = "\n".join(lines[start + 1 : end])
            if not source.is_file():
                problems.append(f"{page}:{index + 1}: {source} does not exist")
            elif block not in source.read_text(encoding="utf-8"):
                problems.append(
                    f"{page}:{start + 1}: this block is no longer in {source}; copy it again"
                )
    return problems


# --- docs/development.md: the workspace layout ----------------------------------------


def _layout_block(text: str) -> list[tuple[int, str]] | None:
    """The numbered lines of the first fenced block under the layout heading, if any."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == LAYOUT_HEADING), None)
    if start is None:
        return None
    for index in range(start + 1, len(lines)):
        if _HEADING.match(lines[index]):
            return None
        if lines[index].lstrip().startswith("```"):
            end = next(
                (i for i in range(index + 1, len(lines)) if lines[i].strip() == "```"),
                len(lines),
            )
            return [(i + 1, lines[i]) for i in range(index + 1, end)]
    return None


# The layout block is a tree drawn with indentation, two spaces a level:
#
#   core/                 distribution `dbnotify`, import `dbnotify`
#     src/dbnotify/
#       outbox/           durable delivery: the SQLite store, group commit, the retry
#                         policy, the worker
#
# - An entry is a line's first word: a path relative to the folder the line is indented
#   under (none at the left margin). A folder ends in "/". One entry may span several
#   segments (`src/dbnotify/`, `plugins/email/`). The rest of the line describes it.
# - An entry is indented at most one level deeper than the entry above it: one level
#   deeper puts it inside that entry, which must be a folder; the same level or less
#   makes it a sibling of the entry above at its own level.
# - A line indented more than one level deeper than the entry above it continues that
#   entry's description and names nothing: descriptions sit in a column to the right of
#   the deepest entry, so a continuation can never be taken for an entry.
LEVEL = 2
"""Spaces per level of the layout tree."""


def layout_paths(block: Sequence[tuple[int, str]]) -> tuple[list[str], list[str]]:
    """The paths the layout block names (folders end in "/"), and its misindented lines."""
    paths: list[str] = []
    problems: list[str] = []
    folders: list[tuple[int, str]] = []  # (indentation, path): the folders still open
    above: int | None = None  # the indentation of the entry above
    for number, line in block:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if above is not None and indent > above + LEVEL:
            continue  # the description of the entry above goes on
        above = indent
        name = line.split()[0]
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent_indent, parent = folders[-1] if folders else (-LEVEL, "")
        if indent != parent_indent + LEVEL:
            problems.append(
                f"{DEVELOPMENT}:{number}: layout entry {name} is not indented "
                f"{LEVEL} spaces under a folder"
            )
            continue
        paths.append(parent + name)
        if name.endswith("/"):
            folders.append((indent, parent + name))
    return paths, problems


def _must_list(repo: Path) -> list[str]:
    """What the layout must name: the core's modules and sub-packages (a folder with a
    ``*.py`` in it), and each plugin folder (a folder of plugins/ with a pyproject.toml)."""
    core = repo / CORE
    modules = [p.name for p in core.glob("*.py") if p.name != "__init__.py"]
    packages = {f"{p.parent.name}/" for p in core.glob("*/*.py")}
    plugins = [f"plugins/{p.parent.name}/" for p in (repo / "plugins").glob("*/pyproject.toml")]
    return sorted(CORE + name for name in [*modules, *packages]) + sorted(plugins)


def layout_problems(repo: Path) -> list[str]:
    """What the layout of docs/development.md misses, and what it names that is not there."""
    block = _layout_block((repo / DEVELOPMENT).read_text(encoding="utf-8"))
    if block is None:
        return [f'{DEVELOPMENT}: no fenced code block under "{LAYOUT_HEADING}"']
    paths, problems = layout_paths(block)
    for path in paths:
        target = repo / path
        if not (target.is_dir() if path.endswith("/") else target.exists()):
            problems.append(f"{DEVELOPMENT}: layout lists {path}, which does not exist")
    named = set(paths)
    problems.extend(
        f"{DEVELOPMENT}: layout does not list {path}"
        for path in _must_list(repo)
        if path not in named
    )
    return problems


# --- docs/development.md: the table of nox sessions -----------------------------------

# The session table has one row per session, its name in the first cell (in backticks
# or not): `lint`, `tests(integration)`. A name with a placeholder in angle brackets
# stands for every session it matches, a placeholder matching any text without
# parentheses: `contract(<plugin>)` for each `contract(...)`, `tests(dbnotify-<plugin>)`
# for each `tests(dbnotify-...)`. A session with a row of its own is left out of the
# placeholders, so `tests(integration)` may have its row beside `tests(<member>)`. Every
# session must be stood for by exactly one row, and every row must stand for a session.


def session_rows(text: str) -> list[str] | None:
    """The first cell of each row of the session table, or None when there is no table."""
    lines = [line for _number, line in _prose(text, inline_code=True)]
    start = next((i for i, line in enumerate(lines) if line.startswith(SESSIONS_INTRO)), None)
    if start is None:
        return None
    table: list[str] = []
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("|"):
            table.append(line.strip())
        elif table or _HEADING.match(line):
            break
    if len(table) < 2 or not re.fullmatch(r"\|?[\s:|-]+\|?", table[1]):
        return None
    return [row.strip("|").split("|")[0].strip().strip("`").strip() for row in table[2:]]


def session_table_problems(repo: Path, sessions: Sequence[str]) -> list[str]:
    """The sessions the table of docs/development.md misses, and its rows for none."""
    rows = session_rows((repo / DEVELOPMENT).read_text(encoding="utf-8"))
    if rows is None:
        return [f'{DEVELOPMENT}: no table of sessions after "{SESSIONS_INTRO}"']
    problems: list[str] = []
    exact: list[str] = []
    patterns: dict[str, re.Pattern[str]] = {}
    for row in rows:
        if row in exact or row in patterns:
            problems.append(f"{DEVELOPMENT}: session table lists {row} twice")
        elif _PLACEHOLDER.search(row):
            parts = _PLACEHOLDER.split(row)
            patterns[row] = re.compile("[^()]+".join(map(re.escape, parts)))
        else:
            exact.append(row)
            if row not in sessions:
                problems.append(f"{DEVELOPMENT}: session table lists {row}, which is not a session")
    used: set[str] = set()
    for session in sessions:
        if session in exact:
            continue
        matches = [row for row, pattern in patterns.items() if pattern.fullmatch(session)]
        used.update(matches)
        if not matches:
            problems.append(f"{DEVELOPMENT}: session table does not list {session}")
        elif len(matches) > 1:
            problems.append(
                f"{DEVELOPMENT}: session table lists {session} more than once: "
                + ", ".join(matches)
            )
    problems.extend(
        f"{DEVELOPMENT}: session table lists {row}, which stands for no session"
        for row in patterns
        if row not in used
    )
    return problems


def nox_sessions(noxfile: Path) -> list[str]:
    """Every session of ``noxfile``, default or not, each parametrization apart."""
    if importlib.util.find_spec("nox") is None:
        raise CannotCheck(
            f"nox is not installed for {sys.executable}: run this with "
            "`uv run python tools/check_docs.py` (nox is in the workspace's dev group)"
        )
    # --json lists only the selected sessions: -k True (a keyword expression, evaluated as
    # Python) selects them all, those left out of nox.options.sessions too.
    command = [sys.executable, "-m", "nox", "-l", "--json", "-k", "True", "--noxfile", str(noxfile)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise CannotCheck(f"`nox -l --json` exited {done.returncode}:\n{done.stderr.strip()}")
    try:
        return [str(session["session"]) for session in json.loads(done.stdout)]
    except (ValueError, TypeError, KeyError) as error:
        raise CannotCheck(f"`nox -l --json` printed no session list ({error})") from error


def api_reference_problems(repo: Path) -> list[str]:
    """docs/api.md against the API's route table, where dbnotify[serve] is importable."""
    if (
        importlib.util.find_spec("dbnotify") is None
        or importlib.util.find_spec("starlette") is None
    ):
        print("docs/api.md not checked: dbnotify[serve] is not importable here", file=sys.stderr)
        return []
    spec = importlib.util.spec_from_file_location("api_reference", repo / "tools/api_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.stale(repo / "docs" / "api.md"):
        return ["docs/api.md is stale: run python3 -m uv run python tools/api_reference.py"]
    return []


def main() -> int:
    """Run every check on this repository; print what is out of date."""
    docs = Path(os.path.relpath(ROOT / "docs"))  # relative, as pages are named in messages
    problems = broken_links(docs) + stale_excerpts(docs, Path(os.path.relpath(ROOT / EXAMPLE)))
    problems += layout_problems(ROOT)
    problems += api_reference_problems(ROOT)
    status = 0
    try:
        problems += session_table_problems(ROOT, nox_sessions(ROOT / "noxfile.py"))
    except CannotCheck as error:
        print(f"cannot check the session table: {error}", file=sys.stderr)
        status = 2
    if problems:
        print("the docs are out of date:\n  " + "\n  ".join(problems), file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
