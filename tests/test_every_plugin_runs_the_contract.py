"""Every channel plugin of the workspace runs the behavioural contract suite.

A member of ``plugins/`` passes only if its ``tests/`` folder holds a test module with a
class that pytest collects (its name starts with ``Test``) derived from
:class:`dbnotify.testing.contract.ChannelContract`. ``nox -s contract`` runs those
modules (and the generic checks) against each plugin's built wheel.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
EXAMPLE = ROOT / "docs" / "examples" / "dbnotify-example"


def _derives_from_contract(node: ast.ClassDef) -> bool:
    return any(
        (isinstance(base, ast.Name) and base.id == "ChannelContract")
        or (isinstance(base, ast.Attribute) and base.attr == "ChannelContract")
        for base in node.bases
    )


def contract_classes(tests: Path) -> list[str]:
    """``module::Class`` for each collected ChannelContract subclass in ``tests``."""
    found = []
    for module in sorted(tests.glob("test_*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        found += [
            f"{module.name}::{node.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and node.name.startswith("Test")
            and _derives_from_contract(node)
        ]
    return found


def test_the_workspace_has_plugins() -> None:
    assert len(PLUGINS) >= 2, PLUGINS
    assert ROOT / "plugins" / "email" in PLUGINS


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_plugin_runs_the_contract_suite(plugin: Path) -> None:
    tests = plugin / "tests"
    assert tests.is_dir(), f"plugins/{plugin.name} has no tests/ folder"
    assert contract_classes(tests), (
        f"plugins/{plugin.name}/tests has no test module with a class `Test...` derived "
        "from dbnotify.testing.contract.ChannelContract: add tests/test_"
        f"{plugin.name.replace('-', '_')}_contract.py with the fixtures channel_type, "
        "valid_options, unreachable_options, rejecting_options, secret_values and received "
        "(docs/plugin-tutorial.md shows how; plugins/email/tests/test_email_contract.py "
        "is one)"
    )


def test_the_tutorial_example_runs_the_contract_suite() -> None:
    assert contract_classes(EXAMPLE / "tests") == ["test_example_contract.py::TestLogfileContract"]


def test_a_module_without_a_collected_subclass_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        "from dbnotify.testing import contract\n"
        "class XContract(contract.ChannelContract): ...\n"  # not collected: no Test prefix
        "class TestOther: ...\n"
    )
    assert contract_classes(tmp_path) == []
    (tmp_path / "test_y.py").write_text(
        "from dbnotify.testing import contract\nclass TestY(contract.ChannelContract): ...\n"
    )
    assert contract_classes(tmp_path) == ["test_y.py::TestY"]
