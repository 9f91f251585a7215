"""Importing dbnotify and its command stays cheap: heavy modules load when used."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import dbnotify
from dbnotify import cli

HEAVY = ("jinja2", "cattrs", "asyncio", "httpx", "aiosmtplib", "apprise", "rich")
"""Libraries that only sending, rendering or validating a configuration needs."""
HEAVY_CORE = ("dbnotify.config", "dbnotify.notifier", "dbnotify.rendering", "dbnotify.outbox")


def imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout.splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(
        m
        for m in modules
        if m.split(".")[0] in HEAVY
        or m.startswith("dbnotify_")
        or any(m == core or m.startswith(core + ".") for core in HEAVY_CORE)
    )


def test_importing_dbnotify_imports_nothing_heavy() -> None:
    assert heavy_in(imported_after("import dbnotify")) == []


def test_importing_the_command_imports_nothing_heavy() -> None:
    assert heavy_in(imported_after("import dbnotify.cli")) == []


def test_every_exported_name_resolves_on_first_use() -> None:
    from dbnotify.config.load import load_config
    from dbnotify.notifier import Notifier
    from dbnotify.results import Status

    assert dbnotify.Notifier is Notifier
    assert dbnotify.load_config is load_config
    assert dbnotify.Status is Status
    for name in dbnotify.__all__:
        assert getattr(dbnotify, name) is not None
    assert set(dbnotify.__all__) <= set(dir(dbnotify))


def test_from_dbnotify_import_a_name_and_a_submodule() -> None:
    modules = imported_after("from dbnotify import Event, hookspecs\nassert hookspecs.PROJECT")
    assert "dbnotify.events" in modules
    assert "dbnotify.config" not in modules


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'dbnotify' has no attribute 'Notifer'"):
        _ = dbnotify.Notifer  # type: ignore[attr-defined]


def test_every_command_is_reachable_under_its_own_name() -> None:
    context = click.Context(cli.main)
    assert cli.main.list_commands(context) == sorted(cli.COMMANDS)
    for name in cli.COMMANDS:
        command = cli.main.get_command(context, name)
        assert isinstance(command, click.Command)
        assert command.name == name


def test_a_light_command_imports_only_its_own_module() -> None:
    modules = imported_after(
        "from dbnotify.cli import main\nmain(['plugins'], standalone_mode=False)"
    )
    assert sorted(m for m in modules if m.startswith("dbnotify.cli.")) == [
        "dbnotify.cli._common",
        "dbnotify.cli.group",
        "dbnotify.cli.listing",
        "dbnotify.cli.plugins",
    ]


def test_python_dash_m_runs_the_command() -> None:
    """The contract suite falls back to ``python -m dbnotify.cli`` without the script."""
    run = subprocess.run(
        [sys.executable, "-m", "dbnotify.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "worker" in run.stdout
    assert "plugins" in run.stdout


class Boom:
    """A channel plugin whose send raises: a bug the CLI reports in one line."""

    @staticmethod
    def channel_info() -> Any:
        from dbnotify.hookspecs import ChannelInfo

        return ChannelInfo("boom", config_class=dict)

    @staticmethod
    def validate_config(options: Any) -> dict[str, Any]:
        return dict(options)

    @staticmethod
    async def send() -> Any:
        raise RuntimeError("kaput")

    @staticmethod
    async def test() -> Any:
        raise RuntimeError("kaput")


@pytest.fixture
def boom_registry() -> Iterator[None]:
    """The process-wide registry, with the ``boom`` plugin, put back afterwards (and the
    root logger the CLI configures)."""
    from dbnotify import hookspecs
    from dbnotify.plugins import default_registry

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    default_registry.cache_clear()
    plugin = type(
        "BoomPlugin",
        (),
        {
            n: hookspecs.hookimpl(getattr(Boom, n))
            for n in ("channel_info", "validate_config", "send", "test")
        },
    )
    default_registry().register("boom", plugin)
    yield
    default_registry.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("boom_registry")
@pytest.mark.parametrize("verbose", [False, True])
def test_a_plugin_bug_is_one_line_unless_verbose(tmp_path: Path, verbose: bool) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[channels.b]\ntype = "boom"\n[routing]\nchannels = ["b"]\n')
    runner = CliRunner()
    args = [*(["-v"] if verbose else []), "send", "test", "-c", str(config)]
    run = runner.invoke(cli.main, args)
    assert run.exit_code == 1
    assert (
        "b [channel] (channel): failed (permanent) - the boom plugin raised RuntimeError: kaput"
        in run.stdout
    )
    if verbose:
        assert "Traceback (most recent call last)" in run.stderr
        assert "warning: event test" in run.stderr  # each outcome, a failure as a warning
    else:
        assert run.stderr == (
            "error: channel 'b': the boom plugin raised RuntimeError: kaput (run with -v for "
            "the traceback)\n"
        )


def test_the_listing_s_styles_are_click_s() -> None:
    """The console script writes the listing's styles itself: the codes click writes."""
    from dbnotify.cli.listing import BOLD, RED, YELLOW, style

    assert style("type", BOLD) == click.style("type", bold=True)
    assert style("failed", RED) == click.style("failed", fg="red")
    assert style("warning", YELLOW) == click.style("warning", fg="yellow")


@pytest.mark.parametrize("columns", ["", "0", "x", "33"])
def test_the_listing_s_width_is_shutil_s(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    import shutil

    from dbnotify.cli.listing import terminal_columns

    monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns
