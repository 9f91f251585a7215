"""The logfile channel passes the dbnotify plugin contract suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbnotify.testing.contract import ChannelContract

KEY = "contract-signing-key-5b7e"


class TestLogfileContract(ChannelContract):
    @pytest.fixture
    def channel_type(self) -> str:
        return "logfile"

    @pytest.fixture
    def log(self, tmp_path: Path) -> Path:
        return tmp_path / "notifications.log"

    @pytest.fixture
    def valid_options(self, log: Path) -> dict[str, Any]:
        return {"path": str(log), "signing_key": KEY}

    @pytest.fixture
    def unreachable_options(self, tmp_path: Path) -> dict[str, Any]:
        # a folder that is not there (yet): a mount that is not up
        return {"path": str(tmp_path / "not-mounted" / "notifications.log")}

    @pytest.fixture
    def rejecting_options(self, tmp_path: Path) -> dict[str, Any]:
        # a folder where the file should be: no retry fixes that
        return {"path": str(tmp_path)}

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [KEY]

    @pytest.fixture
    def received(self, log: Path) -> Callable[[], int]:
        def entries() -> int:
            if not log.exists():
                return 0
            return sum(line.startswith("=== ") for line in log.read_text().splitlines())

        return entries
