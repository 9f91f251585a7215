"""Headless Debian Chromium, for screenshots of the rendered HTML email.

``nox -s browser`` runs these tests. Chromium only opens a local file (``file://``), with
a fresh profile per screenshot and its background networking, updates and sync off.

Needs Debian's ``chromium`` (``apt-get install chromium``). Without it the tests skip,
or fail when ``CI`` is set: CI must never skip them silently.

``pytest tests`` (the integration session) leaves this folder alone: it is collected only
when named on the command line (``pytest tests/browser``), as its nox session does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

HERE = Path(__file__).resolve().parent
WINDOW = (700, 560)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect this folder only when it (or a file in it) is named on the command line."""
    for arg in config.args:
        named = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if named == HERE or HERE in named.parents:
            return None
    return True


def unavailable(reason: str) -> NoReturn:
    """Skip, except under CI, where a test that cannot run is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: this test must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        unavailable("chromium not installed: apt-get install chromium")
    return found


Screenshot = Callable[[str, Path], Path]


@pytest.fixture
def screenshot(chromium: str, tmp_path: Path) -> Screenshot:
    """``screenshot(html, png)``: a WINDOW-sized PNG of the page, as Chromium draws it."""

    def take(html: str, png: Path) -> Path:
        page = tmp_path / f"{png.stem}.html"
        page.write_text(html, encoding="utf-8")
        home = tmp_path / f"{png.stem}-home"
        profile = home / "profile"
        profile.mkdir(parents=True)
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={png}",
            page.as_uri(),
        ]
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=90, env=env, check=False
        )
        failed = f"chromium exited {done.returncode}:\n{done.stderr[-3000:]}"
        assert done.returncode == 0, failed
        assert png.is_file(), f"no screenshot written\n{failed}"
        return png

    return take
