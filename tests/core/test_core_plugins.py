"""Plugin loading for real: distributions on disk, entry points, pluggy validation."""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pluggy
import pytest

from dbnotify import hookspecs
from dbnotify.errors import ConfigError
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.plugins import (
    ALLOW_ENV,
    BLOCK_ENV,
    GROUP,
    ChannelPlugin,
    InstalledPlugin,
    LoadFailure,
    PluginRegistry,
    default_registry,
)

Dist = Any  # conftest.Dist: name, version, module, site


def load(**environ: str) -> PluginRegistry:
    """A registry with every plugin loaded (loading is lazy: ``all()`` loads them all)."""
    registry = PluginRegistry(environ=environ)
    registry.all()
    return registry


def loaded(registry: PluginRegistry) -> list[str]:
    """The channel types whose plugin loaded."""
    return [p.type for p in registry.all()]


# --- the real email plugin ----------------------------------------------------------------


def test_email_plugin_loads_from_its_entry_point() -> None:
    registry = load()
    plugin = registry.get("email")
    assert isinstance(plugin, ChannelPlugin)
    assert plugin.type == "email"
    assert plugin.distribution == "dbnotify-email"
    assert plugin.version
    assert plugin.info.user_delivery is True
    assert plugin.info.config_class.__name__ == "EmailConfig"
    assert registry.failures == []


def test_loading_is_lazy_and_happens_once(install_dist: Callable[..., Dist]) -> None:
    registry = PluginRegistry(environ={})
    dist = install_dist({"chat": "{module}"})  # installed after the registry was made
    assert "chat" in registry.types()
    install_dist({"late": "{module}"})  # after first use: not picked up again
    assert "late" not in registry.types()
    assert registry.get("chat").distribution == dist.name


def test_default_registry_is_one_per_process() -> None:
    assert default_registry() is default_registry()


# --- lazy, per channel type ---------------------------------------------------------------


def _with_summary(dist: Dist, summary: str) -> None:
    """Add a ``Summary`` (pyproject's ``description``) to an installed test distribution."""
    (metadata,) = dist.site.glob("*.dist-info/METADATA")
    metadata.write_text(metadata.read_text(encoding="utf-8") + f"Summary: {summary}\n")


def test_get_imports_only_the_plugin_of_that_type(install_dist: Callable[..., Dist]) -> None:
    chat = install_dist({"chat": "{module}"})
    rooms = install_dist({"rooms": "{module}"})
    registry = PluginRegistry(environ={})
    assert registry.get("chat") is not None
    assert chat.module in sys.modules
    assert rooms.module not in sys.modules
    assert registry.get("rooms") is not None
    assert rooms.module in sys.modules


def test_finding_plugins_imports_none(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    broken = install_dist({"broken": "{module}"}, plugin_source["broken_import"])
    chat = install_dist({"chat": "{module}"})
    registry = PluginRegistry(environ={BLOCK_ENV: "email"})
    assert registry.types() == ["broken", "chat"]  # listed: whether it loads is not known yet
    assert registry.skipped() == {"email": "disabled by DBNOTIFY_DISABLE_PLUGINS"}
    assert [p.type for p in registry.installed()] == ["broken", "chat", "email"]
    assert broken.module not in sys.modules
    assert chat.module not in sys.modules
    assert registry.failures == []
    # using it is what imports it, and only then does the failure show
    assert registry.get("broken") is None
    assert [f.name for f in registry.failures] == ["broken"]
    assert chat.module not in sys.modules


def test_installed_reads_type_distribution_version_and_summary(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    dist = install_dist(
        {"broken": "{module}"},
        plugin_source["broken_import"],
        dist="dbnotify-broken",
        version="0.3",
    )
    _with_summary(dist, "Broken: never imports")
    registry = PluginRegistry(environ={ALLOW_ENV: "broken"})
    rows = {p.type: p for p in registry.installed()}
    assert rows["broken"] == InstalledPlugin(
        "broken", "dbnotify-broken", "0.3", "Broken: never imports", skipped=None
    )
    assert rows["broken"].allowed
    assert rows["email"].distribution == "dbnotify-email"
    assert rows["email"].summary == "Email (SMTP): HTML notifications through any SMTP server"
    assert rows["email"].skipped == "not in DBNOTIFY_PLUGINS"
    assert not rows["email"].allowed
    assert dist.module not in sys.modules
    assert registry.failures == []


def test_installed_without_a_summary_has_an_empty_one(install_dist: Callable[..., Dist]) -> None:
    install_dist({"chat": "{module}"}, dist="dbnotify-chat", version="2.0")
    (row,) = [p for p in PluginRegistry(environ={}).installed() if p.type == "chat"]
    assert (row.distribution, row.version, row.summary) == ("dbnotify-chat", "2.0", "")


def test_installed_lists_each_distribution_of_a_duplicate_type(
    install_dist: Callable[..., Dist],
) -> None:
    install_dist({"chat": "{module}"}, dist="dbnotify-chat-a")
    install_dist({"chat": "{module}"}, dist="dbnotify-chat-b")
    rows = [p.distribution for p in PluginRegistry(environ={}).installed() if p.type == "chat"]
    assert sorted(rows) == ["dbnotify-chat-a", "dbnotify-chat-b"]


def test_a_plugin_is_loaded_once_across_threads(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    slow = "import time\ntime.sleep(0.05)  # a slow import: the others ask meanwhile\n"
    install_dist({"chat": "{module}"}, slow + plugin_source["good"])
    registry = PluginRegistry(environ={})
    start = threading.Barrier(8)

    def use() -> ChannelPlugin | None:
        start.wait()
        return registry.get("chat")

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: use(), range(8)))
    assert found[0] is not None
    assert all(p is found[0] for p in found)
    assert registry.failures == []  # no "already provided" from a second, racing load


def test_a_failed_load_is_tried_once(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"broken": "{module}"}, plugin_source["broken_import"])
    registry = PluginRegistry(environ={})
    assert registry.get("broken") is None
    assert registry.get("broken") is None
    registry.all()
    assert "failed to load" in registry.explain_missing("broken")
    assert [f.name for f in registry.failures] == ["broken"]


def test_explain_missing_loads_the_type_it_explains(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"broken": "{module}"}, plugin_source["broken_import"], dist="dbnotify-broken")
    chat = install_dist({"chat": "{module}"})
    registry = PluginRegistry(environ={})
    assert registry.explain_missing("broken").startswith(
        "channel type 'broken' is installed (dbnotify-broken) but failed to load: "
    )
    assert chat.module not in sys.modules


def test_explain_missing_suggests_an_installed_type_not_yet_loaded(
    install_dist: Callable[..., Dist],
) -> None:
    chat = install_dist({"chat": "{module}"})
    registry = PluginRegistry(environ={})
    assert registry.explain_missing("chta") == (
        "unknown channel type 'chta'; did you mean 'chat'? (installed: chat, email; channel "
        "types come from plugins such as dbnotify-email)"
    )
    assert chat.module not in sys.modules


def test_register_loads_the_installed_plugin_of_that_type_only(
    install_dist: Callable[..., Dist], fake_channel: Any
) -> None:
    chat = install_dist({"chat": "{module}"}, dist="dbnotify-chat")
    rooms = install_dist({"rooms": "{module}"})
    registry = PluginRegistry(environ={})
    with pytest.raises(ValueError, match="already provided by dbnotify-chat"):
        registry.register("chat", fake_channel())
    assert chat.module in sys.modules
    assert rooms.module not in sys.modules
    registry.register("fake", fake_channel())
    assert registry.types() == ["chat", "email", "fake", "rooms"]


# --- distributions on disk -----------------------------------------------------------------


def test_good_plugin_loads_with_distribution_and_version(
    install_dist: Callable[..., Dist],
) -> None:
    dist = install_dist({"chat": "{module}"}, dist="dbnotify-chat", version="2.3.1")
    registry = load()
    plugin = registry.get("chat")
    assert plugin is not None
    assert (plugin.type, plugin.distribution, plugin.version) == ("chat", "dbnotify-chat", "2.3.1")
    assert plugin.info.description == "chat rooms"
    assert registry.types() == ["chat", "email"]
    assert registry.failures == []
    # its hooks are callable through the facade, with the subset of arguments it takes
    config = plugin.validate_config({"room": "ops"})
    assert config.room == "ops"
    assert dist.module


async def test_plugin_hooks_may_take_a_subset_of_arguments(
    install_dist: Callable[..., Dist],
) -> None:
    install_dist({"chat": "{module}"})
    plugin = load().get("chat")
    assert plugin is not None
    results = await plugin.send(plugin.validate_config({}), None, None, None)
    assert [(r.recipient, r.status.value) for r in results] == [("general", "delivered")]


def test_plugin_entry_point_may_name_an_object(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"chat": "{module}:plugin"}, plugin_source["as_object"])
    registry = load()
    assert registry.get("chat") is not None, registry.failures


def test_plugin_config_errors_come_back_located(install_dist: Callable[..., Dist]) -> None:
    install_dist({"chat": "{module}"})
    registry = load()
    with pytest.raises(ConfigError) as info:
        registry.get("chat").validate_config({"rooom": "x"})
    assert [str(i) for i in info.value.issues] == ["rooom: unknown key; did you mean 'room'?"]


def test_broken_import_is_reported_and_others_still_load(
    install_dist: Callable[..., Dist],
    caplog: pytest.LogCaptureFixture,
    plugin_source: dict[str, str],
) -> None:
    install_dist(
        {"broken": "{module}"},
        plugin_source["broken_import"],
        dist="dbnotify-broken",
        version="0.3",
    )
    install_dist({"chat": "{module}"})
    registry = load()
    assert loaded(registry) == ["chat", "email"]
    assert registry.failures == [
        LoadFailure(
            "broken",
            "dbnotify-broken",
            "0.3",
            "import failed: RuntimeError: libfoo.so.3: cannot open shared object file",
        )
    ]
    assert registry.get("broken") is None
    assert (
        "dbnotify plugin 'broken' from dbnotify-broken could not be loaded: import "
        "failed: RuntimeError: libfoo.so.3: cannot open shared object file"
    ) in caplog.text


def test_entry_point_naming_a_missing_module(install_dist: Callable[..., Dist]) -> None:
    install_dist({"ghost": "dbn_test_no_such_module_xyz"}, dist="dbnotify-ghost")
    registry = load()
    (failure,) = registry.failures
    assert (failure.name, failure.distribution) == ("ghost", "dbnotify-ghost")
    assert failure.error == (
        "import failed: ModuleNotFoundError: No module named 'dbn_test_no_such_module_xyz'"
    )
    assert "email" in registry.types()


def test_misspelt_hook_is_rejected_by_check_pending(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    dist = install_dist({"chat": "{module}"}, plugin_source["misspelt_hook"], dist="dbnotify-chat")
    registry = load()
    assert registry.get("chat") is None
    (failure,) = registry.failures
    assert (failure.name, failure.distribution) == ("chat", "dbnotify-chat")
    assert failure.error.startswith("invalid plugin: unknown hook 'sendd' in plugin ")
    assert dist.module in failure.error
    assert loaded(registry) == ["email"]


def test_plugin_missing_a_hook_is_rejected(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"chat": "{module}"}, plugin_source["missing_hook"])
    registry = load()
    (failure,) = registry.failures
    assert failure.error == "invalid plugin: missing hooks: test"
    assert registry.get("chat") is None


def test_hook_with_an_argument_the_spec_lacks_is_rejected(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"chat": "{module}"}, plugin_source["bad_argument"])
    registry = load()
    (failure,) = registry.failures
    assert failure.error.startswith("invalid plugin: ")
    assert "'recipient'" in failure.error
    assert registry.get("chat") is None


def test_channel_info_must_be_channel_info(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"chat": "{module}"}, plugin_source["bad_info"])
    registry = load()
    (failure,) = registry.failures
    assert failure.error == "invalid plugin: channel_info must return ChannelInfo"


def test_rejected_plugin_leaves_no_hooks_behind(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"chat": "{module}"}, plugin_source["missing_hook"])
    install_dist({"rooms": "{module}"})
    registry = load()
    assert loaded(registry) == ["email", "rooms"]
    # the rejected plugin was unregistered: the next plugin's check_pending passed
    assert [f.name for f in registry.failures] == ["chat"]


def test_duplicate_channel_type_from_two_distributions(
    install_dist: Callable[..., Dist],
) -> None:
    install_dist({"chat": "{module}"}, dist="dbnotify-chat-a")
    install_dist({"chat": "{module}"}, dist="dbnotify-chat-b")
    registry = load()
    plugin = registry.get("chat")
    assert plugin is not None
    (failure,) = registry.failures
    assert {plugin.distribution, failure.distribution} == {"dbnotify-chat-a", "dbnotify-chat-b"}
    assert failure.error == (f"channel type 'chat' is already provided by {plugin.distribution}")


def test_duplicate_channel_type_registered_in_code(fake_channel: Any) -> None:
    registry = PluginRegistry(environ={})
    with pytest.raises(ValueError, match="already provided") as info:
        registry.register("email", fake_channel())
    assert str(info.value) == "channel type 'email' is already provided by dbnotify-email"
    assert registry.get("email").distribution == "dbnotify-email"


# --- allow and block lists -----------------------------------------------------------------


def test_allow_list_loads_only_named_plugins(install_dist: Callable[..., Dist]) -> None:
    install_dist({"chat": "{module}", "rooms": "{module}"})
    registry = load(**{ALLOW_ENV: " chat , "})
    assert registry.types() == ["chat"]
    assert registry.skipped() == {
        "email": "not in DBNOTIFY_PLUGINS",
        "rooms": "not in DBNOTIFY_PLUGINS",
    }


def test_empty_allow_list_loads_nothing(install_dist: Callable[..., Dist]) -> None:
    install_dist({"chat": "{module}"})
    registry = load(**{ALLOW_ENV: ""})
    assert registry.types() == []
    assert set(registry.skipped()) == {"chat", "email"}


def test_block_list_skips_named_plugins(install_dist: Callable[..., Dist]) -> None:
    install_dist({"chat": "{module}"})
    registry = load(**{BLOCK_ENV: "email"})
    assert registry.types() == ["chat"]
    assert registry.skipped() == {"email": "disabled by DBNOTIFY_DISABLE_PLUGINS"}


def test_block_list_wins_over_allow_list() -> None:
    registry = load(**{ALLOW_ENV: "email", BLOCK_ENV: "email"})
    assert registry.types() == []
    assert registry.skipped() == {"email": "disabled by DBNOTIFY_DISABLE_PLUGINS"}


def test_blocked_plugin_is_never_imported(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"broken": "{module}"}, plugin_source["broken_import"])
    registry = load(**{BLOCK_ENV: "broken"})
    assert registry.failures == []
    assert registry.types() == ["email"]


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV, "email")
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    assert PluginRegistry().types() == []
    monkeypatch.delenv(BLOCK_ENV)
    monkeypatch.setenv(ALLOW_ENV, "email")
    assert PluginRegistry().types() == ["email"]


def test_registry_without_entry_points(fake_channel: Any) -> None:
    registry = PluginRegistry(entry_points=False, environ={})
    assert registry.types() == []
    plugin = registry.register("fake", fake_channel(), distribution="my-app", version="9")
    assert (plugin.distribution, plugin.version) == ("my-app", "9")
    assert registry.types() == ["fake"]
    assert registry.all() == [plugin]


def test_register_rejects_an_invalid_object() -> None:
    class Incomplete:
        @hookimpl
        def channel_info(self) -> ChannelInfo:
            return ChannelInfo("x", dict)

    registry = PluginRegistry(entry_points=False, environ={})
    with pytest.raises(ValueError, match="missing hooks") as info:
        registry.register("incomplete", Incomplete())
    assert str(info.value) == "invalid plugin: missing hooks: validate_config, send, test"
    assert registry.types() == []


def test_validate_config_must_return_the_declared_class(fake_channel: Any) -> None:
    class Sloppy(fake_channel):
        @hookimpl
        def validate_config(self, options: Mapping[str, Any]) -> dict[str, Any]:
            return dict(options)

    registry = PluginRegistry(entry_points=False, environ={})
    plugin = registry.register("fake", Sloppy())
    with pytest.raises(ConfigError) as info:
        plugin.validate_config({})
    assert str(info.value.issues[0]) == (
        "plugin 'fake' returned dict from validate_config, expected FakeConfig"
    )


# --- explain_missing -----------------------------------------------------------------------


def test_explain_missing_suggests_a_close_name() -> None:
    assert load().explain_missing("emial") == (
        "unknown channel type 'emial'; did you mean 'email'? (installed: email; channel "
        "types come from plugins such as dbnotify-email)"
    )


def test_explain_missing_without_a_close_name() -> None:
    assert load(**{BLOCK_ENV: "email"}).explain_missing("slack") == (
        "unknown channel type 'slack' (installed: none; channel types come from plugins "
        "such as dbnotify-email)"
    )


def test_explain_missing_failed_to_load(
    install_dist: Callable[..., Dist], plugin_source: dict[str, str]
) -> None:
    install_dist({"broken": "{module}"}, plugin_source["broken_import"], dist="dbnotify-broken")
    assert load().explain_missing("broken") == (
        "channel type 'broken' is installed (dbnotify-broken) but failed to load: import "
        "failed: RuntimeError: libfoo.so.3: cannot open shared object file"
    )


def test_explain_missing_disabled_and_not_allowed() -> None:
    assert load(**{BLOCK_ENV: "email"}).explain_missing("email") == (
        "channel type 'email' is disabled by DBNOTIFY_DISABLE_PLUGINS"
    )
    assert load(**{ALLOW_ENV: "chat"}).explain_missing("email") == (
        "channel type 'email' is not in DBNOTIFY_PLUGINS; DBNOTIFY_PLUGINS names 'chat', "
        "which no installed plugin provides"
    )


def test_config_reports_a_disabled_channel_type(
    email_channel: Callable[..., dict[str, Any]],
) -> None:
    from dbnotify.config.load import load_config

    with pytest.raises(ConfigError) as info:
        load_config({"channels": {"ops-mail": email_channel()}}, load(**{BLOCK_ENV: "email"}))
    assert [str(i) for i in info.value.issues] == [
        "channels.ops-mail.type: channel type 'email' is disabled by DBNOTIFY_DISABLE_PLUGINS"
    ]


# --- hookspecs: a meta-test ----------------------------------------------------------------


def _hookspec_names() -> set[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, marker)
    }


def test_every_hookspec_has_a_docstring() -> None:
    names = _hookspec_names()
    assert names
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc, f"hookspec {name} needs a docstring"
        assert len(doc) > 40, f"hookspec {name}: say what it does, not just its name"


def test_hook_names_are_exactly_the_hookspecs() -> None:
    every = (*hookspecs.HOOK_NAMES, *hookspecs.OPTIONAL_HOOKS)
    assert set(every) == _hookspec_names()
    assert len(every) == len(set(every))


def test_hookspecs_register_with_pluggy() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in (*hookspecs.HOOK_NAMES, *hookspecs.OPTIONAL_HOOKS):
        assert getattr(pm.hook, name).spec is not None


def test_email_plugin_implements_every_hook_with_spec_arguments() -> None:
    import dbnotify_email.plugin as email_plugin

    for name in (*hookspecs.HOOK_NAMES, *hookspecs.OPTIONAL_HOOKS):
        spec_args = set(inspect.signature(getattr(hookspecs, name)).parameters)
        impl_args = set(inspect.signature(getattr(email_plugin, name)).parameters)
        assert impl_args <= spec_args, name


def test_entry_point_group_name() -> None:
    assert GROUP == "dbnotify.channels"


def test_a_hook_argument_with_a_default_is_refused_at_load() -> None:
    """pluggy silently never passes such an argument: a plugin would miss retry_only."""
    from dbnotify.hookspecs import ChannelInfo, hookimpl

    class Defaulted:
        @hookimpl
        def channel_info(self) -> ChannelInfo:
            return ChannelInfo("defaulted", dict)

        @hookimpl
        def validate_config(self, options: Any) -> dict[str, Any]:
            return dict(options)

        @hookimpl
        async def send(
            self,
            config: Any,
            notification: Any,
            renderer: Any,
            recipients: Any,
            retry_only: Any = None,
        ) -> list[Any]:
            return []

        @hookimpl
        async def test(
            self, config: Any, notification: Any, renderer: Any, send_message: bool
        ) -> Any:
            return None

    registry = PluginRegistry(entry_points=False)
    with pytest.raises(
        ValueError,
        match=(
            r"hook send: parameter 'retry_only' has a default value, so pluggy would never "
            r"pass it; remove the default"
        ),
    ):
        registry.register("defaulted", Defaulted())


def test_a_plugin_that_exits_at_import_is_a_failure_not_the_end(
    install_dist: Callable[..., Dist],
) -> None:
    install_dist({"quits": "{module}"}, "import sys\nsys.exit(3)\n", dist="dbnotify-quits")
    chat = install_dist({"chat": "{module}"})
    registry = PluginRegistry(environ={})
    assert registry.get("quits") is None
    assert [(f.name, f.error) for f in registry.failures] == [
        ("quits", "import failed: SystemExit: 3")
    ]
    assert registry.get("chat") is not None
    assert chat.module in sys.modules


def test_a_typo_in_the_environment_is_reported(install_dist: Callable[..., Dist]) -> None:
    install_dist({"chat": "{module}"})
    registry = PluginRegistry(environ={ALLOW_ENV: "emial,chat", BLOCK_ENV: "slak"})
    typo = "DBNOTIFY_PLUGINS names 'emial', which no installed plugin provides"
    assert registry.environment_problems() == [
        typo + "; did you mean 'email'?",
        "DBNOTIFY_DISABLE_PLUGINS names 'slak', which no installed plugin provides",
    ]
    assert registry.explain_missing("email") == (
        "channel type 'email' is not in DBNOTIFY_PLUGINS; DBNOTIFY_PLUGINS names 'emial', "
        "which no installed plugin provides; did you mean 'email'?; DBNOTIFY_DISABLE_PLUGINS "
        "names 'slak', which no installed plugin provides"
    )
