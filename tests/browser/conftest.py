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
import re
import shutil
import subprocess
from collections.abc import Callable
from html import escape
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


Screenshot = Callable[..., Path]
Measure = Callable[..., int]


def _run(chromium: str, home: Path, page: Path, window: tuple[int, int], *out: str) -> str:
    """Chromium headless on ``page`` with a fresh profile; its stdout."""
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
        f"--window-size={window[0]},{window[1]}",
        *out,
        page.as_uri(),
    ]
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, env=env, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def screenshot(chromium: str, tmp_path: Path) -> Screenshot:
    """``screenshot(html, png, window=WINDOW)``: a window-sized PNG of the page, as
    Chromium draws it."""

    def take(html: str, png: Path, window: tuple[int, int] = WINDOW) -> Path:
        page = tmp_path / f"{png.stem}.html"
        page.write_text(framed(html, window), encoding="utf-8")
        size = (max(window[0], MIN_WIDTH), window[1])
        _run(chromium, tmp_path / f"{png.stem}-home", page, size, f"--screenshot={png}")
        assert png.is_file(), "no screenshot written"
        if size != window:
            from PIL import Image  # here: ``pytest tests`` loads this file without Pillow

            with Image.open(png) as drawn:
                drawn.crop((0, 0, *window)).save(png)
        return png

    return take


MIN_WIDTH = 500
"""Headless Chromium never makes a window narrower than this."""

WIDTH_SCRIPT = """<script>
window.addEventListener("load", () => {
  const frame = document.getElementById("screen");
  const root = (frame ? frame.contentDocument : document).documentElement;
  document.body.setAttribute("data-scroll-width", String(root.scrollWidth));
});
</script>"""


def framed(html: str, window: tuple[int, int]) -> str:
    """The page as a screen of ``window`` shows it: narrower than MIN_WIDTH, inside an
    iframe of that size (top left, no border), whose document is laid out at that width."""
    if window[0] >= MIN_WIDTH:
        return html
    return (
        '<!DOCTYPE html><html><body style="margin:0"><iframe id="screen" style="border:0;'
        f'display:block;width:{window[0]}px;height:{window[1]}px" '
        f'srcdoc="{escape(html, quote=True)}"></iframe></body></html>'
    )


@pytest.fixture
def scroll_width(chromium: str, tmp_path: Path) -> Measure:
    """``scroll_width(html, window)``: the page's laid-out width in CSS pixels at that
    window size (wider than the window: the reader must scroll sideways)."""

    def measure(html: str, window: tuple[int, int]) -> int:
        page = tmp_path / f"width-{window[0]}.html"
        host = framed(html, window)
        page.write_text(host.replace("</body>", WIDTH_SCRIPT + "</body>"), encoding="utf-8")
        size = (max(window[0], MIN_WIDTH), window[1])
        dom = _run(chromium, tmp_path / f"width-{window[0]}-home", page, size, "--dump-dom")
        found = re.search(r'data-scroll-width="(\d+)"', dom)
        assert found, f"no width measured:\n{dom[:2000]}"
        return int(found.group(1))

    return measure
