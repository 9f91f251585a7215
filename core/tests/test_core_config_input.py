"""Hostile input to the configuration: each a ConfigError that names the problem, never
a traceback (no channel plugin needed: these are the core's own sections)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from dbnotify import ConfigError, DbnotifyError, load_config
from dbnotify.config.fields import setting
from dbnotify.config.structure import structure
from dbnotify.plugins import PluginRegistry


def issues_of(source: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(source, PluginRegistry(entry_points=False))  # type: ignore[arg-type]
    assert isinstance(info.value, DbnotifyError)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "+nan"])
def test_a_number_that_is_not_finite_is_refused(text: str) -> None:
    assert issues_of({"dispatch": {"deadline": float(text)}}) == [
        f"dispatch.deadline: must be a finite number (got {float(text)!r})"
    ]


def test_a_duration_that_is_not_finite_is_refused(tmp_path: Path) -> None:
    raw = {"outbox": {"path": str(tmp_path / "o.sqlite"), "retention": float("inf")}}
    assert issues_of(raw) == ["outbox.retention: must be a finite number of seconds (got inf)"]


def test_nan_in_a_toml_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[dispatch]\ndeadline = nan\n", encoding="utf-8")
    assert issues_of(path) == ["dispatch.deadline: must be a finite number (got nan)"]


def test_a_plugin_class_gets_the_same_check() -> None:
    @attrs.frozen
    class Block:
        timeout: float = setting(default=5.0, description="seconds")

    with pytest.raises(ConfigError) as info:
        structure(Block, {"timeout": float("nan")})
    assert str(info.value.issues[0]) == "timeout: must be a finite number (got nan)"


def test_a_binary_file_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[dispatch]\ndeadline = 5\n# \xff\xfe\n")
    assert issues_of(path) == [
        f"{path}: not valid TOML: not UTF-8 text (byte 26); save the file as UTF-8"
    ]


def test_a_folder_is_not_a_configuration_file(tmp_path: Path) -> None:
    assert issues_of(tmp_path) == [
        f"configuration file {str(tmp_path)!r} is a folder; name the TOML file in it"
    ]


def test_deeply_nested_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    assert issues_of(path) == [f"{path}: not valid TOML: nested too deeply"]


def test_an_outbox_url_in_path_is_refused_without_echoing_its_password() -> None:
    raw = {"outbox": {"path": "postgresql://dbnotify:pg-Secret-77@db.internal/dbnotify"}}
    assert issues_of(raw) == [
        "outbox.path: must be the path of a SQLite file, not a postgresql:// URL; put it in "
        "[outbox] url"
    ]


def test_an_outbox_url_that_is_not_postgresql_is_refused_without_echoing_it() -> None:
    raw = {"outbox": {"url": "mysql://root:pg-Secret-77@db.internal/dbnotify"}}
    assert issues_of(raw) == [
        'outbox.url: must be a PostgreSQL URL such as "postgresql://dbnotify@db.internal:5432/'
        'dbnotify" (for a SQLite file, use path)'
    ]


@pytest.mark.parametrize(
    ("outbox", "expected"),
    [
        (
            {},
            'outbox: set path (a SQLite file: path = "/var/lib/dbackup/dbnotify-outbox.sqlite")'
            ' or url (PostgreSQL: url = "postgresql://dbnotify@db.internal:5432/dbnotify")',
        ),
        (
            {"path": "outbox.sqlite", "url": "postgresql://db/dbnotify"},
            "outbox: path and url are both set; keep one (to move a SQLite outbox to "
            "PostgreSQL, run dbnotify outbox copy --to URL, then remove path)",
        ),
        (
            {"path": "outbox.sqlite", "password": "x"},
            "outbox.password: is for url (PostgreSQL); a SQLite path has none",
        ),
        (
            {"url": "postgresql://db/dbnotify", "writer": "process"},
            'outbox.writer: "process" is for path (SQLite); a PostgreSQL outbox does its work '
            "on its server: remove writer",
        ),
        (
            {"path": "outbox.sqlite", "writer": "fork"},
            "outbox.writer: must be one of thread, process (got 'fork')",
        ),
        (
            {"url": "postgresql://db/dbnotify", "schema": "Bad-Name"},
            "outbox.schema: must be a lower-case SQL name of letters, digits and _ (got "
            "'Bad-Name'); e.g. schema = \"dbnotify\"",
        ),
    ],
)
def test_the_outbox_names_one_store(outbox: dict[str, object], expected: str) -> None:
    assert issues_of({"outbox": outbox}) == [expected]


def test_an_outbox_url_with_a_password_is_never_shown() -> None:
    from dbnotify.config.model import OutboxSettings
    from dbnotify.secrets import Secret

    settings = OutboxSettings(
        url="postgresql://dbnotify:pg-Secret-77@db.internal:5432/dbnotify",
        password=Secret("pg-Other-88"),
    )
    assert "pg-Secret-77" not in repr(settings)
    assert "pg-Other-88" not in repr(settings)
    assert settings.where == "postgresql://dbnotify:********@db.internal:5432/dbnotify"
