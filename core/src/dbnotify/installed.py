"""The channel plugins installed, read from the distributions' metadata files alone.

Why not importlib.metadata: ``dbnotify plugins`` runs in a fresh process, and importing
importlib.metadata (email, zipfile, pathlib, csv ...) costs more than the rest of the
command. This module reads the same files with the cheapest parts of the standard
library: each ``*.dist-info`` / ``*.egg-info`` directory on ``sys.path``, its
``entry_points.txt``, and for a distribution that declares a channel, its ``METADATA``
(or ``PKG-INFO``). It follows importlib.metadata's rules: the same order, and the first
distribution of a name on ``sys.path`` hides the others.

Where the environment or a file is one this reader does not cover (a zip or an ``.egg``
on ``sys.path``, a distribution finder of its own in ``sys.meta_path``, a file that is
not plain UTF-8 ``key: value`` lines), it asks importlib.metadata instead: the answer,
or the error, is always importlib.metadata's.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a fresh process more than this whole module
    from collections.abc import Iterable, Mapping
    from importlib.metadata import Distribution

GROUP = "dbnotify.channels"
ALLOW_ENV = "DBNOTIFY_PLUGINS"
BLOCK_ENV = "DBNOTIFY_DISABLE_PLUGINS"
UNKNOWN_DISTRIBUTION = "(unknown)"

_INFO_SUFFIXES = (".dist-info", ".egg-info")
_KEYS = ("Name", "Version", "Summary")
_NOT_READ = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
"""What importlib.metadata takes for "no such file" when it reads a metadata file."""


class _Unusual(Exception):
    """This reader does not cover what it found: importlib.metadata decides."""


class Declared:
    """One entry point of the group: a channel type, the object that provides it
    (``module:attribute``), and its distribution's name, version and summary, read the
    first time they are asked for."""

    __slots__ = ("_meta", "_source", "group", "name", "value")

    def __init__(
        self, name: str, value: str, group: str, source: str | Distribution | None
    ) -> None:
        self.name = name
        self.value = value
        self.group = group
        self._source = source
        """The distribution's metadata directory, or importlib.metadata's distribution."""
        self._meta: tuple[str, str, str] | None = None

    def load(self) -> object:
        """Import the object, as ``importlib.metadata.EntryPoint.load`` does (and raises)."""
        from importlib.metadata import EntryPoint

        return EntryPoint(self.name, self.value, self.group).load()

    def meta(self) -> tuple[str, str, str]:
        """(distribution, version, summary), each with its whitespace runs as one space."""
        if self._meta is None:
            fields = self._fields()
            name, version, summary = (" ".join(fields.get(key, "").split()) for key in _KEYS)
            self._meta = (name or UNKNOWN_DISTRIBUTION, version, summary)
        return self._meta

    def _fields(self) -> dict[str, str]:
        source = self._source
        if source is None:
            return {}
        if isinstance(source, str):
            try:
                return _fields(
                    _read(os.path.join(source, "METADATA"))
                    or _read(os.path.join(source, "PKG-INFO"))
                    or _read(source)  # an old egg-info file, as importlib.metadata reads it
                    or ""
                )
            except (_Unusual, ValueError):  # ValueError: not UTF-8
                source = _distribution(source)
        metadata = source.metadata
        return {key: metadata[key] or "" for key in _KEYS if key in metadata}


def declared(group: str = GROUP) -> list[Declared]:
    """The entry points of ``group`` in the installed distributions, in the order
    ``importlib.metadata.entry_points(group=group)`` gives them."""
    try:
        return _declared(group)
    except (_Unusual, ValueError):  # ValueError: a file not UTF-8, or a line without "="
        from importlib.metadata import entry_points

        return [Declared(ep.name, ep.value, group, ep.dist) for ep in entry_points(group=group)]


def _declared(group: str) -> list[Declared]:
    _check_finders()
    found: list[Declared] = []
    seen: set[str] = set()
    for root in sys.path:
        for normalized, folder in _infos(root):
            if normalized in seen:  # importlib.metadata's _unique: the first one wins
                continue
            seen.add(normalized)
            text = _read(os.path.join(folder, "entry_points.txt"))
            if text:
                found += [Declared(n, v, group, folder) for n, v in _entry_points(text, group)]
    return found


def _check_finders() -> None:
    """Only the standard path finder may know of distributions (importlib.metadata asks
    every finder of ``sys.meta_path`` that has ``find_distributions``)."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and getattr(finder, "find_distributions", None) is not None:
            raise _Unusual(finder)


def _infos(root: object) -> list[tuple[str, str]]:
    """(normalized name, metadata directory) in one ``sys.path`` entry, grouped by name in
    the order the names first appear, as importlib.metadata's ``Lookup`` has them."""
    if not isinstance(root, str) or os.path.basename(root).lower().endswith(".egg"):
        raise _Unusual(root)
    try:
        children = os.listdir(root or ".")
    except OSError:
        if os.path.exists(root or "."):  # a zip, perhaps: importlib.metadata reads those
            raise _Unusual(root) from None
        return []
    groups: dict[str, list[str]] = {}
    for child in children:
        if not child.lower().endswith(_INFO_SUFFIXES):
            continue
        name = child.rpartition(".")[0].partition("-")[0]
        if not child.endswith(_INFO_SUFFIXES) or not name or child.startswith("."):
            raise _Unusual(child)  # importlib.metadata would read the name from the file
        groups.setdefault(_normalize(name), []).append(os.path.join(root, child))
    return [(name, folder) for name, folders in groups.items() for folder in folders]


def _normalize(name: str) -> str:
    """PEP 503 with underscores: ``re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")``
    without importing re."""
    out: list[str] = []
    for char in name.lower():
        if char not in "-_.":
            out.append(char)
        elif not out or out[-1] != "_":
            out.append("_")
    return "".join(out)


def _read(path: str) -> str | None:
    """The file's text (universal newlines), or ``None`` where importlib.metadata sees
    no file."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except _NOT_READ:
        return None


def _entry_points(text: str, group: str) -> list[tuple[str, str]]:
    """``name = value`` pairs of ``[group]``, as importlib.metadata's ``Sectioned`` reads
    them (a line without ``=`` in any section is an error there: ValueError here)."""
    found = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section is None:
            continue
        name, equals, value = line.partition("=")
        if not equals:
            raise ValueError(line)
        if section == group:
            found.append((name.strip(), value.strip()))
    return found


def _fields(text: str) -> dict[str, str]:
    """Name, Version and Summary from a metadata file's header block: the first of each
    (by any case), continuation lines joined. Whatever the email parser would take
    otherwise (an envelope ``From`` line, a malformed line) is :class:`_Unusual`."""
    headers: list[list[str]] = []
    for line in text.split("\n"):
        if not line:
            break
        if line[0] in " \t":
            if not headers:
                raise _Unusual(line)
            headers[-1][1] += " " + line
            continue
        key, colon, value = line.partition(":")
        if line.startswith("From ") or not colon or not key or any(c < "!" or c > "~" for c in key):
            raise _Unusual(line)
        headers.append([key, value])
    first: dict[str, str] = {}
    for key, value in headers:
        first.setdefault(key.lower(), value)
    return {
        key: first[key.lower()] for key in ("Name", "Version", "Summary") if key.lower() in first
    }


def _distribution(folder: str) -> Distribution:
    import pathlib
    from importlib.metadata import PathDistribution

    return PathDistribution(pathlib.Path(folder))


def names(value: str | None) -> frozenset[str] | None:
    """The channel types of ``DBNOTIFY_PLUGINS`` / ``DBNOTIFY_DISABLE_PLUGINS``."""
    if value is None:
        return None
    return frozenset(n.strip() for n in value.split(",") if n.strip())


class Choice:
    """What the environment allows to load: ``DBNOTIFY_PLUGINS``, ``DBNOTIFY_DISABLE_PLUGINS``."""

    __slots__ = ("allow", "block")

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.allow = names(environ.get(ALLOW_ENV))
        self.block = names(environ.get(BLOCK_ENV)) or frozenset()

    def skip_reason(self, name: str) -> str | None:
        """Why the environment keeps ``name`` from loading, or ``None``."""
        if self.allow is not None and name not in self.allow:
            return f"not in {ALLOW_ENV}"
        if name in self.block:
            return f"disabled by {BLOCK_ENV}"
        return None

    def problems(self, found: Iterable[str]) -> list[str]:
        """Names in the two variables that no installed plugin provides (a typo there
        would silently load nothing, or block nothing)."""
        known = set(found)
        problems = []
        for variable, chosen in ((ALLOW_ENV, self.allow), (BLOCK_ENV, self.block)):
            for name in sorted(chosen or ()):
                if name not in known:
                    from dbnotify.config.fields import did_you_mean

                    problems.append(
                        f"{variable} names {name!r}, which no installed plugin provides"
                        + did_you_mean(name, known)
                    )
        return problems
