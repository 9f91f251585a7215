"""tools/check_docs.py catches each way the docs go stale, word for word, on tiny trees.

``nox -s docs`` trusts its silence, so each check is shown failing here, on a repository
of a few files built in a temporary folder, and a true one passing. ``tools/`` is no
package: the tool is imported by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "check_docs.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_docs", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check_docs = _load()

FENCE = "```"
DEVELOPMENT = f"""\
# Development

## Workspace layout

{FENCE}
pyproject.toml        the workspace root
core/                 distribution `dbnotify`
  src/dbnotify/
    events.py         the events, with a description long enough to go on
                      to a second line, in the description's column
    outbox/           durable delivery
      store.py        the SQLite store
plugins/email/        distribution `dbnotify-email`
{FENCE}

## Running the tests

`nox` sessions:

| session | what it does |
|---|---|
| `tests(dbnotify)` | the core's tests |
| `tests(<member>)` | every other member's |
| `lint` | ruff |
"""
SESSIONS = ["tests(dbnotify)", "tests(dbnotify-email)", "tests(integration)", "lint"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose development guide is true."""
    for path in [
        "pyproject.toml",
        "core/src/dbnotify/__init__.py",
        "core/src/dbnotify/events.py",
        "core/src/dbnotify/outbox/__init__.py",
        "core/src/dbnotify/outbox/store.py",
        "core/src/dbnotify/outbox/worker.py",  # a sub-package's modules may go unlisted
        "plugins/email/pyproject.toml",
    ]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "development.md").write_text(DEVELOPMENT, encoding="utf-8")
    return tmp_path


def _edit(repo: Path, old: str, new: str) -> None:
    page = repo / "docs" / "development.md"
    text = page.read_text(encoding="utf-8")
    assert old in text
    page.write_text(text.replace(old, new), encoding="utf-8")


def test_a_true_guide_passes(repo: Path) -> None:
    assert check_docs.layout_problems(repo) == []
    assert check_docs.session_table_problems(repo, SESSIONS) == []
    assert check_docs.broken_links(repo / "docs") == []


def test_the_layout_reads_the_tree_from_indentation() -> None:
    block = check_docs._layout_block(DEVELOPMENT)
    assert check_docs.layout_paths(block) == (
        [
            "pyproject.toml",
            "core/",
            "core/src/dbnotify/",
            "core/src/dbnotify/events.py",
            "core/src/dbnotify/outbox/",
            "core/src/dbnotify/outbox/store.py",
            "plugins/email/",
        ],
        [],
    )


def test_a_module_the_layout_omits(repo: Path) -> None:
    (repo / "core/src/dbnotify/http.py").touch()
    (repo / "core/src/dbnotify/rendering").mkdir()
    (repo / "core/src/dbnotify/rendering/__init__.py").touch()
    assert check_docs.layout_problems(repo) == [
        "docs/development.md: layout does not list core/src/dbnotify/http.py",
        "docs/development.md: layout does not list core/src/dbnotify/rendering/",
    ]


def test_a_plugin_the_layout_omits(repo: Path) -> None:
    (repo / "plugins/slack").mkdir()
    (repo / "plugins/slack/pyproject.toml").touch()
    assert check_docs.layout_problems(repo) == [
        "docs/development.md: layout does not list plugins/slack/"
    ]


def test_a_stale_layout_entry(repo: Path) -> None:
    (repo / "core/src/dbnotify/outbox/store.py").unlink()
    assert check_docs.layout_problems(repo) == [
        "docs/development.md: layout lists core/src/dbnotify/outbox/store.py, which does not exist"
    ]


def test_an_entry_indented_under_a_file(repo: Path) -> None:
    _edit(repo, "pyproject.toml        the workspace root\n", "pyproject.toml\n  odd.py\n")
    assert check_docs.layout_problems(repo) == [
        "docs/development.md:7: layout entry odd.py is not indented 2 spaces under a folder"
    ]


def test_a_session_the_table_omits_and_a_stale_row(repo: Path) -> None:
    _edit(repo, "| `lint` | ruff |\n", "| `format` | ruff format |\n")
    assert check_docs.session_table_problems(repo, SESSIONS) == [
        "docs/development.md: session table lists format, which is not a session",
        "docs/development.md: session table does not list lint",
    ]


def test_a_placeholder_row_that_stands_for_no_session(repo: Path) -> None:
    assert check_docs.session_table_problems(repo, ["tests(dbnotify)", "lint"]) == [
        "docs/development.md: session table lists tests(<member>), which stands for no session"
    ]


def test_a_session_two_rows_stand_for(repo: Path) -> None:
    _edit(repo, "| `lint` |", "| `tests(dbnotify-<plugin>)` | plugins |\n| `lint` |")
    assert check_docs.session_table_problems(repo, SESSIONS) == [
        "docs/development.md: session table lists tests(dbnotify-email) more than once: "
        "tests(<member>), tests(dbnotify-<plugin>)"
    ]


def test_a_broken_link_and_a_missing_heading(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(
        "# A\n\n[b](b.md) and [here](#nowhere), not `[code](c.md)`\n\n"
        "```\n[in a block](c.md)\n```\n\n[fine](a.md#a)\n",
        encoding="utf-8",
    )
    assert check_docs.broken_links(docs) == [
        f"{docs / 'a.md'}:3: b.md: b.md does not exist",
        f"{docs / 'a.md'}:3: #nowhere: no heading #nowhere in a.md",
    ]


def test_a_stale_excerpt(tmp_path: Path) -> None:
    docs, example = tmp_path / "docs", tmp_path / "example"
    docs.mkdir()
    example.mkdir()
    (example / "plugin.py").write_text("def send() -> None:\n    pass\n", encoding="utf-8")
    marker = "<!-- example: plugin.py -->"
    (docs / "ok.md").write_text(f"{marker}\n```python\n    pass\n```\n", encoding="utf-8")
    assert check_docs.stale_excerpts(docs, example) == []
    (docs / "ok.md").write_text(f"{marker}\n```python\n    return\n```\n", encoding="utf-8")
    assert check_docs.stale_excerpts(docs, example) == [
        f"{docs / 'ok.md'}:2: this block is no longer in {example / 'plugin.py'}; copy it again"
    ]


def test_nox_lists_the_sessions_it_does_not_run_by_default() -> None:
    pytest.importorskip("nox")  # in the workspace, not in the nox sessions' environments
    sessions = check_docs.nox_sessions(ROOT / "noxfile.py")
    assert {"lint", "contract_external", "bench"} <= set(sessions)
