"""dbnotify.installed finds what importlib.metadata finds: the same entry points, in the
same order, with the same distribution, version and summary, or the same error."""

from __future__ import annotations

import importlib.metadata
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dbnotify import installed

GROUP = "dbnotify.test_installed"
"""A group of these tests' own: what else is installed does not matter."""

Found = list[tuple[str, str, tuple[str, str, str]]]


def through_importlib(group: str = GROUP) -> Found:
    def meta(dist: importlib.metadata.Distribution | None) -> tuple[str, str, str]:
        if dist is None:
            return (installed.UNKNOWN_DISTRIBUTION, "", "")
        m = dist.metadata
        name, version, summary = (
            " ".join((m[k] or "").split()) if k in m else "" for k in ("Name", "Version", "Summary")
        )
        return (name or installed.UNKNOWN_DISTRIBUTION, version, summary)

    return [
        (ep.name, ep.value, meta(ep.dist)) for ep in importlib.metadata.entry_points(group=group)
    ]


def ours(group: str = GROUP) -> Found:
    return [(d.name, d.value, d.meta()) for d in installed.declared(group)]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``site("a", {"foo-1.0.dist-info": {"METADATA": "...", ...}})``: a folder of
    metadata directories, put first on ``sys.path``."""

    def make(name: str, dists: dict[str, dict[str, str | bytes]]) -> Path:
        folder = tmp_path / name
        for dist, files in dists.items():
            (folder / dist).mkdir(parents=True)
            for filename, content in files.items():
                path = folder / dist / filename
                if isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content, encoding="utf-8")
        monkeypatch.syspath_prepend(str(folder))
        return folder

    return make


def entry_points(*pairs: str) -> str:
    return f"[console_scripts]\nx = x:main\n\n[{GROUP}]\n" + "\n".join(pairs) + "\n"


def test_the_environment_s_channels_are_found_as_importlib_finds_them() -> None:
    """Whatever is installed (nothing but the core in its own nox session; every plugin
    in the workspace's environment), the two readers agree."""
    assert ours(installed.GROUP) == through_importlib(installed.GROUP)


def test_fields_folded_in_any_case_first_one_wins(site: Callable[..., Path]) -> None:
    site(
        "a",
        {
            "chat_rooms-1.2.dist-info": {
                "METADATA": (
                    "Metadata-Version: 2.1\nname: chat-rooms\nVersion: 1.2\n"
                    "SUMMARY: Chat rooms:\n  a summary\n\tover lines\nSummary: not this one\n"
                    "Description-Content-Type: text/markdown\n\nThe body\nSummary: no\n"
                ),
                "entry_points.txt": entry_points("# a comment", "chat = chat_rooms.plugin", ""),
            },
            "other-2.0.dist-info": {"METADATA": "Name: other\nVersion: 2.0\n"},
        },
    )
    assert ours() == through_importlib()
    assert ours() == [
        ("chat", "chat_rooms.plugin", ("chat-rooms", "1.2", "Chat rooms: a summary over lines"))
    ]


def test_the_first_distribution_of_a_name_on_the_path_wins(site: Callable[..., Path]) -> None:
    old = {
        "METADATA": "Name: Chat.Rooms\nVersion: 0.9\n",
        "entry_points.txt": entry_points("old = o"),
    }
    new = {
        "METADATA": "Name: chat_rooms\nVersion: 1.0\n",
        "entry_points.txt": entry_points("new = n"),
    }
    site(
        "later",
        {
            "Chat.Rooms-0.9.dist-info": old,
            "b_plugin-1.0.dist-info": {
                "METADATA": "Name: b-plugin\nVersion: 1.0\n",
                "entry_points.txt": entry_points("b = b"),
            },
        },
    )
    site("first", {"chat_rooms-1.0.dist-info": new, "Chat__Rooms-1.1.egg-info": old})
    assert ours() == through_importlib()
    # one of the two in "first" (the folder's listing order decides), none from "later"
    assert [name for name, _value, _meta in ours()][1:] == ["b"]


def test_pkg_info_no_metadata_and_an_unknown_name(site: Callable[..., Path]) -> None:
    site(
        "a",
        {
            "legacy-1.0.egg-info": {
                "METADATA": "",
                "PKG-INFO": "Metadata-Version: 1.1\nName: legacy\nVersion: 1.0\nSummary: old\n",
                "entry_points.txt": entry_points("legacy = legacy"),
            },
            "nameless-1.0.dist-info": {"entry_points.txt": entry_points("nameless = n")},
        },
    )
    assert ours() == through_importlib()
    assert ("nameless", "n", (installed.UNKNOWN_DISTRIBUTION, "", "")) in ours()


@pytest.mark.parametrize(
    "metadata",
    [
        "From someone\nName: odd\nVersion: 1\n",  # an envelope line, as in a mailbox
        "Name: odd\nVersion: 1\nnot a header\nSummary: body now\n",
        " continued\nName: odd\nVersion: 1\n",
        "Name: odd\nVersion: 1\nSum mary: spaced\nSummary: s\n",
        b"Name: odd\nVersion: 1\nSummary: caf\xe9\n",  # not UTF-8
    ],
)
def test_what_this_reader_does_not_cover_is_importlib_s_answer(
    site: Callable[..., Path], metadata: str | bytes
) -> None:
    site(
        "a", {"odd-1.dist-info": {"METADATA": metadata, "entry_points.txt": entry_points("o = o")}}
    )
    try:
        expected: object = through_importlib()
    except Exception as exc:  # noqa: BLE001  the same error, whichever it is
        with pytest.raises(type(exc)):
            ours()
    else:
        assert ours() == expected


@pytest.mark.parametrize(
    "text", [entry_points("no equals sign here"), b"[dbnotify.test_installed]\nx = caf\xe9\n"]
)
def test_an_entry_points_file_importlib_refuses_is_the_same_error(
    site: Callable[..., Path], text: str | bytes
) -> None:
    site("a", {"bad-1.dist-info": {"METADATA": "Name: bad\n", "entry_points.txt": text}})
    with pytest.raises(Exception) as theirs:  # noqa: PT011  whichever importlib raises
        through_importlib()
    with pytest.raises(theirs.type):
        ours()


def test_a_zip_on_the_path_is_read_by_importlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\nSummary: z\n")
        z.writestr("zipped-1.0.dist-info/entry_points.txt", entry_points("zipped = zipped"))
    monkeypatch.syspath_prepend(str(archive))
    assert ours() == through_importlib()
    assert ours() == [("zipped", "zipped", ("zipped", "1.0", "z"))]


def test_a_declared_plugin_loads_as_its_entry_point_does(site: Callable[..., Path]) -> None:
    site("a", {"j-1.dist-info": {"entry_points.txt": entry_points("j = json:dumps")}})
    (found,) = installed.declared(GROUP)
    import json

    assert found.load() is json.dumps


def test_a_finder_of_distributions_of_its_own_is_asked_by_importlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finder in ``sys.meta_path`` that knows distributions (as some tools install):
    importlib.metadata asks it, so this reader hands over."""
    folder = tmp_path / "elsewhere" / "found-1.0.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text("Name: found\nVersion: 1.0\n", encoding="utf-8")
    (folder / "entry_points.txt").write_text(entry_points("found = f"), encoding="utf-8")

    class Finder(importlib.metadata.DistributionFinder):
        @staticmethod
        def find_spec(*_args: object) -> None:
            return None

        def find_distributions(
            self, context: importlib.metadata.DistributionFinder.Context | None = None
        ) -> list[importlib.metadata.Distribution]:
            return [importlib.metadata.PathDistribution(folder)]

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert ours() == through_importlib()
    assert ("found", "f", ("found", "1.0", "")) in ours()
