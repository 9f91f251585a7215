"""``dbnotify.channel`` is the plugin authors' API: pinned here, name by name.

A name added to or removed from it is a change for every third-party plugin, so it is
made on purpose: here, in docs/plugins.md and in the changelog (httpx's
``test_exported_members`` pattern).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import attrs

import dbnotify.channel

EXPORTED = [
    "MASK",
    "ChannelInfo",
    "ConfigError",
    "ConfigIssue",
    "Duration",
    "FailureKind",
    "Field",
    "InvalidField",
    "Masker",
    "Notification",
    "RecipientResult",
    "Renderer",
    "Secret",
    "Severity",
    "Status",
    "TestReport",
    "TestStage",
    "base64_forms",
    "basic_forms",
    "credential_key",
    "describe_value",
    "did_you_mean",
    "hookimpl",
    "in_range",
    "make_converter",
    "non_empty",
    "not_below",
    "one_line",
    "positive",
    "regular_file_problem",
    "secret_forms",
    "setting",
    "structure",
]
"""Sorted as ruff sorts ``__all__``: constants, classes, then functions."""


def _ruff_order(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_exactly_the_pinned_list() -> None:
    assert dbnotify.channel.__all__ == EXPORTED
    assert sorted(EXPORTED, key=_ruff_order) == EXPORTED


def test_every_exported_name_resolves_and_none_is_private() -> None:
    for name in EXPORTED:
        assert not name.startswith("_"), name
        assert getattr(dbnotify.channel, name) is not None, name


def test_the_module_holds_nothing_public_but_its_exports() -> None:
    # pytest rewrites dbnotify's modules (a pytest11 plugin's distribution): "@py_builtins"
    names = [name for name in vars(dbnotify.channel) if name.isidentifier()]
    public = {name for name in names if not name.startswith("_")}
    assert public == set(EXPORTED)


def test_a_field_schema_hint_replaces_what_its_type_would_give() -> None:
    from dbnotify.schema import object_schema

    hint = {"type": "string", "format": "email"}

    @attrs.frozen
    class Settings:
        sender: str = dbnotify.channel.setting(description="who sends", schema=hint)
        copy: str | None = dbnotify.channel.setting(
            default="a@example.com", description="who gets a copy", schema=hint
        )

    properties = object_schema(Settings)["properties"]
    assert properties == {
        "sender": {"type": "string", "format": "email", "description": "who sends"},
        "copy": {
            "type": "string",
            "format": "email",
            "description": "who gets a copy",
            "default": "a@example.com",
        },
    }
    assert hint == {"type": "string", "format": "email"}  # a copy was extended, not the hint


# --- no process-global state for plugins to change -------------------------------------

IMPORT_EVERY_PLUGIN = r"""
import importlib, json, pkgutil, sys, types
from importlib.metadata import entry_points

import cattrs

import dbnotify.channel, dbnotify.config.load, dbnotify.http, dbnotify.plugins, dbnotify.schema

def core_modules():
    return {n: m for n, m in sys.modules.items() if n == "dbnotify" or n.startswith("dbnotify.")}

def snapshot():
    return {
        f"{name}.{attr}": repr(value)
        for name, module in core_modules().items()
        for attr, value in vars(module).items()
        if isinstance(value, dict | list | set | types.MappingProxyType)
        and not attr.startswith("__")
    }

converters = {
    id(value): f"{name}.{attr}"
    for name, module in core_modules().items()
    for attr, value in vars(module).items()
    if isinstance(value, cattrs.BaseConverter)
}
registered = []
for method in [m for m in vars(cattrs.BaseConverter) if m.startswith("register_")]:
    def spy(self, *args, _original=getattr(cattrs.BaseConverter, method), _method=method, **kw):
        if id(self) in converters:
            registered.append(f"{converters[id(self)]}.{_method}")
        return _original(self, *args, **kw)
    setattr(cattrs.BaseConverter, method, spy)

before = snapshot()
imported = []
for ep in entry_points(group="dbnotify.channels"):
    top = ep.value.partition(":")[0].split(".")[0]
    package = importlib.import_module(top)
    imported.append(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
after = snapshot()
changed = sorted(key for key in before if after[key] != before[key])
seen = list(registered)
dbnotify.config.structure._DEFAULT.register_structure_hook(complex, lambda v, _t: v)
canary = registered[len(seen):]
print(json.dumps({"imported": imported, "converters": sorted(converters.values()),
                  "registered": seen, "changed": changed, "canary": canary}))
"""


def test_importing_every_plugin_changes_no_state_of_the_core() -> None:
    """Each plugin owns its converter and puts schema hints on its fields: importing
    plugins, in any order, registers nothing anywhere in the core (a fresh process, so
    that no plugin is imported yet)."""
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_PLUGIN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert "dbnotify_email.settings" in found["imported"]
    assert found["converters"] == ["dbnotify.config.structure._DEFAULT"]
    assert found["canary"] == ["dbnotify.config.structure._DEFAULT.register_structure_hook"]
    assert found["registered"] == []
    assert found["changed"] == []


def test_there_is_no_shared_registry_to_write_to() -> None:
    import dbnotify.config.structure
    import dbnotify.schema

    assert not hasattr(dbnotify.config.structure, "CONVERTER")
    assert not hasattr(dbnotify.schema, "register_schema")
    assert "_DEFAULT" not in dbnotify.channel.__all__


# --- the built-in plugins use the public API alone ------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_FOR_PLUGINS = ("dbnotify.channel", "dbnotify.http", "dbnotify.testing")


def _internal_imports(source: Path, root: Path = ROOT) -> list[str]:
    """``file:line: import`` for each import of a dbnotify module that is not public."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            ours = module == "dbnotify" or module.startswith("dbnotify.")
            public = any(module == p or module.startswith(p + ".") for p in PUBLIC_FOR_PLUGINS)
            if ours and not public:
                where = source.relative_to(root)
                found.append((node.lineno, f"{where}:{node.lineno}: {ast.unparse(node)}"))
    return [line for _number, line in sorted(found)]


def test_the_plugins_import_only_the_public_api() -> None:
    """As a third party would: dbnotify.channel, dbnotify.http, dbnotify.testing."""
    sources = sorted(ROOT.glob("plugins/*/src/**/*.py"))
    assert len({s.relative_to(ROOT).parts[1] for s in sources}) >= 10  # every plugin
    assert [line for source in sources for line in _internal_imports(source)] == []


def test_the_import_check_names_file_line_and_import(tmp_path: Path) -> None:
    module = tmp_path / "plugin.py"
    module.write_text(
        "from dbnotify.channel import hookimpl\n"
        "import dbnotify.http\n"
        "def later():\n"
        "    from dbnotify.config.structure import structure\n"
        "from dbnotify import Notifier\n"
        "import dbnotify_email.settings\n",
        encoding="utf-8",
    )
    assert _internal_imports(module, tmp_path) == [
        "plugin.py:4: from dbnotify.config.structure import structure",
        "plugin.py:5: from dbnotify import Notifier",
    ]


# --- what the docs promise ------------------------------------------------------------

PLUGIN_DOCS = [ROOT / "docs" / "plugins.md", ROOT / "docs" / "plugin-tutorial.md"]


def _names_the_docs_use(text: str) -> set[str]:
    """``dbnotify.channel.X`` and the names of ``from dbnotify.channel import ...``."""
    names = set(re.findall(r"\bdbnotify\.channel\.(\w+)", text))
    for group in re.findall(r"^from dbnotify\.channel import (\([^)]*\)|.*)$", text, re.M):
        names.update(n for n in re.split(r"[\s(),]+", group) if n)
    return names


def test_every_name_the_docs_present_exists() -> None:
    for page in PLUGIN_DOCS:
        used = _names_the_docs_use(page.read_text(encoding="utf-8"))
        assert used, page
        assert used <= set(EXPORTED), f"{page.name}: {sorted(used - set(EXPORTED))}"


def test_the_docs_table_lists_exactly_the_exports() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## What to import: `dbnotify.channel`", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (`.+?`) \|", section, re.M)
    listed = [name for row in rows for name in re.findall(r"`(\w+)`", row)]
    assert sorted(listed) == sorted(EXPORTED)
