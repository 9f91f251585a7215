"""The logfile channel's own behaviour: what an entry looks like, and its signature."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

import dbnotify_example
from dbnotify import ConfigError, Event, Notifier
from dbnotify.plugins import PluginRegistry


def notifier(path: Path, **options: str) -> Notifier:
    registry = PluginRegistry(entry_points=False)  # this plugin alone, registered by hand
    registry.register("logfile", dbnotify_example)
    config = {
        "channels": {"log": {"type": "logfile", "path": str(path), **options}},
        "routing": {"channels": ["log"]},
    }
    return Notifier.from_config(config, plugins=registry)


async def test_each_entry_is_signed(tmp_path: Path) -> None:
    log = tmp_path / "notifications.log"
    result = await notifier(log, signing_key="k3y-for-tests").notify(
        Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
    )
    assert result.ok
    body, _, signature = log.read_text().rpartition("hmac-sha256=")
    assert body.startswith("=== [DBackup] Backup Failed: nightly-pg\n")
    expected = hmac.new(b"k3y-for-tests", body.encode(), hashlib.sha256).hexdigest()
    assert signature == expected + "\n"


def test_config_errors_are_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        notifier(tmp_path / "x.log", signing_key="k", colour="red")
    assert [str(i) for i in info.value.issues] == [
        "channels.log.colour: unknown key (known: path, signing_key)"
    ]
