"""Shared fixtures for the core tests: real plugins, real configs, a real SMTP server."""

from __future__ import annotations

import sys
import textwrap
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from dbnotify.config.structure import structure
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.plugins import PluginRegistry
from dbnotify.results import RecipientResult, TestReport, TestStage
from dbnotify.secrets import Secret

ADMIN_TO = ("ops@example.com", "dba@example.com")


def email_block(**overrides: Any) -> dict[str, Any]:
    """A valid ``[channels.NAME]`` block for the real email plugin."""
    block: dict[str, Any] = {
        "type": "email",
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "from": "DBackup <dbackup@example.com>",
        "to": list(ADMIN_TO),
    }
    block.update(overrides)
    return block


@pytest.fixture
def email_channel() -> Callable[..., dict[str, Any]]:
    """``email_channel(port=...)``: a valid email channel block, with overrides."""
    return email_block


@pytest.fixture
def local_email_channel() -> Callable[..., dict[str, Any]]:
    """An email channel block pointing at a LocalSMTPServer port (no TLS, no AUTH)."""

    def make(port: int, **overrides: Any) -> dict[str, Any]:
        return email_block(host="127.0.0.1", port=port, security="none", **overrides)

    return make


# --- an in-test channel plugin -------------------------------------------------------


@attrs.frozen
class FakeConfig:
    target: str = "room-1"
    token: Secret | None = None


@attrs.define
class FakeChannel:
    """A channel plugin written the way a third party would, with a switchable ``send``.

    ``behaviour`` is an async callable ``(recipients) -> results``; every call is recorded
    in ``calls`` as ``(channel config, notification, recipients)``.
    """

    behaviour: Callable[..., Any] | None = None
    user_delivery: bool = False
    calls: list[tuple[Any, Any, Any]] = attrs.field(factory=list)

    @hookimpl
    def channel_info(self) -> ChannelInfo:
        return ChannelInfo("a fake channel for tests", FakeConfig, user_delivery=self.user_delivery)

    @hookimpl
    def validate_config(self, options: Mapping[str, Any]) -> FakeConfig:
        return structure(FakeConfig, options)

    @hookimpl
    async def send(
        self,
        config: FakeConfig,
        notification: Any,
        renderer: Any,
        recipients: tuple[str, ...] | None,
    ) -> Any:
        self.calls.append((config, notification, recipients))
        if self.behaviour is not None:
            return await self.behaviour(recipients)
        return [RecipientResult.delivered(r) for r in recipients or (config.target,)]

    @hookimpl
    async def test(self, config: FakeConfig, send_message: bool) -> TestReport:
        if self.behaviour is not None:
            await self.behaviour(None)
        return TestReport((TestStage("connect", True, f"reached {config.target}"),))


@pytest.fixture
def fake_channel() -> type[FakeChannel]:
    return FakeChannel


@pytest.fixture
def registry() -> PluginRegistry:
    """A fresh registry from the real entry points (the email plugin), no env filters."""
    return PluginRegistry(environ={})


# --- distributions on disk, found through importlib.metadata ------------------------


GOOD_PLUGIN = """
import attrs
from dbnotify.config.structure import structure
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.results import RecipientResult, TestReport


@attrs.frozen
class Settings:
    room: str = "general"


@hookimpl
def channel_info():
    return ChannelInfo("chat rooms", Settings)


@hookimpl
def validate_config(options):
    return structure(Settings, options)


@hookimpl
async def send(config, notification, recipients):
    return [RecipientResult.delivered(config.room)]


@hookimpl
async def test(config):
    return TestReport(())
"""


@attrs.frozen
class Dist:
    """A distribution installed into a folder on ``sys.path`` for one test."""

    name: str
    version: str
    module: str
    site: Path


@pytest.fixture
def install_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Dist]]:
    """``install_dist({"chat": "{module}"}, source)``: a real distribution on disk.

    Writes ``<name>-<version>.dist-info/{METADATA,entry_points.txt}`` and the module into
    a fresh folder put first on ``sys.path``. ``{module}`` in an entry-point value is
    replaced by the generated module name (unique per call, so imports never collide).
    """
    modules: list[str] = []

    def install(
        entry_points: Mapping[str, str],
        source: str = GOOD_PLUGIN,
        *,
        dist: str | None = None,
        version: str = "1.0",
    ) -> Dist:
        module = f"dbn_test_plugin_{uuid.uuid4().hex[:10]}"
        name = dist or module.replace("_", "-")
        site = tmp_path / f"site-{module}"
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = [f"{ep} = {target.format(module=module)}" for ep, target in entry_points.items()]
        (info / "entry_points.txt").write_text(
            "[dbnotify.channels]\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.syspath_prepend(str(site))
        modules.append(module)
        return Dist(name, version, module, site)

    yield install
    for module in modules:
        sys.modules.pop(module, None)


PLUGIN_SOURCES = {
    "good": GOOD_PLUGIN,
    "broken_import": 'raise RuntimeError("libfoo.so.3: cannot open shared object file")\n',
    "misspelt_hook": GOOD_PLUGIN.replace("async def send(", "async def sendd("),
    "missing_hook": GOOD_PLUGIN.replace("@hookimpl\nasync def test(", "async def test("),
    "bad_argument": GOOD_PLUGIN.replace(
        "async def send(config, notification, recipients)",
        "async def send(config, notification, recipient)",
    ),
    "bad_info": GOOD_PLUGIN.replace(
        'return ChannelInfo("chat rooms", Settings)', 'return {"description": "chat rooms"}'
    ),
    "as_object": GOOD_PLUGIN
    + """

class Chat:
    channel_info = staticmethod(channel_info)
    validate_config = staticmethod(validate_config)
    send = staticmethod(send)
    test = staticmethod(test)


plugin = Chat()
""",
}
assert all(v != GOOD_PLUGIN for k, v in PLUGIN_SOURCES.items() if k != "good")


@pytest.fixture
def plugin_source() -> dict[str, str]:
    """Module sources for on-disk plugins: ``good`` and broken variants of it."""
    return PLUGIN_SOURCES


OTHER_WORKSPACE_PLUGINS = frozenset(
    tomllib.loads(path.read_text(encoding="utf-8"))["project"]["name"]
    for path in (Path(__file__).parents[2] / "plugins").glob("*/pyproject.toml")
) - {"dbnotify-email"}
"""Channel plugins of this workspace other than email: core's tests are not about them."""


@pytest.fixture(autouse=True)
def _only_the_plugins_core_tests_use(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Core's tests see the email plugin and the ones they install, whatever else the
    environment holds (``uv run pytest`` at the root installs every plugin)."""
    import dbnotify.plugins
    from dbnotify.installed import Declared

    real = dbnotify.plugins.declared

    def visible(group: str) -> list[Declared]:
        return [d for d in real(group) if d.meta()[0] not in OTHER_WORKSPACE_PLUGINS]

    monkeypatch.setattr(dbnotify.plugins, "declared", visible)
    # the process-wide registry must not keep this narrowed view for other test folders
    dbnotify.plugins.default_registry.cache_clear()
    yield
    dbnotify.plugins.default_registry.cache_clear()
