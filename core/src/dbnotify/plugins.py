"""Finding, loading and calling channel plugins.

Plugins come from the entry-point group ``dbnotify.channels`` and are loaded lazily, on
first use, once. A plugin that fails to import or to validate is recorded as a
:class:`LoadFailure` (name, distribution, error) and the others still load.

Environment:

``DBNOTIFY_PLUGINS``
    comma-separated channel types: load only these.
``DBNOTIFY_DISABLE_PLUGINS``
    comma-separated channel types: never load these.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import attrs
import pluggy

from dbnotify import hookspecs
from dbnotify.config import ConfigError, ConfigIssue, did_you_mean
from dbnotify.events import Notification
from dbnotify.hookspecs import ChannelInfo
from dbnotify.rendering import Renderer
from dbnotify.results import RecipientResult, TestReport

GROUP = "dbnotify.channels"
ALLOW_ENV = "DBNOTIFY_PLUGINS"
BLOCK_ENV = "DBNOTIFY_DISABLE_PLUGINS"

log = logging.getLogger(__name__)


@attrs.frozen
class LoadFailure:
    """A plugin that could not be used, and why."""

    name: str
    distribution: str
    version: str
    error: str


@attrs.frozen
class ChannelPlugin:
    """A typed facade over one loaded plugin's hooks."""

    type: str
    distribution: str
    version: str
    info: ChannelInfo
    _impls: Mapping[str, pluggy.HookImpl] = attrs.field(repr=False)

    def _call(self, name: str, **kwargs: Any) -> Any:
        impl = self._impls[name]
        return impl.function(*(kwargs[arg] for arg in impl.argnames))

    def validate_config(self, options: Mapping[str, Any]) -> Any:
        try:
            result = self._call("validate_config", options=options)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin bug is reported, not a crash
            raise ConfigError(
                [
                    ConfigIssue(
                        "",
                        (
                            f"the {self.type} plugin failed to validate this block: "
                            f"{type(exc).__name__}: {exc} (a bug in {self.distribution}; please "
                            "report it)"
                        ),
                    )
                ]
            ) from None
        if not isinstance(result, self.info.config_class):
            raise ConfigError(
                [
                    ConfigIssue(
                        "",
                        (
                            f"plugin {self.type!r} returned {type(result).__name__} from "
                            f"validate_config, expected {self.info.config_class.__name__}"
                        ),
                    )
                ]
            )
        return result

    async def send(
        self,
        config: Any,
        notification: Notification,
        renderer: Renderer,
        recipients: tuple[str, ...] | None,
        retry_only: tuple[str, ...] | None = None,
    ) -> Sequence[RecipientResult]:
        results = await self._call(
            "send",
            config=config,
            notification=notification,
            renderer=renderer,
            recipients=recipients,
            retry_only=retry_only,
        )
        return tuple(results or ())  # None is "no result", not a TypeError

    async def shutdown(self) -> None:
        if "shutdown" in self._impls:
            await self._call("shutdown")

    async def test(
        self, config: Any, notification: Notification, renderer: Renderer, send_message: bool
    ) -> TestReport:
        report: TestReport = await self._call(
            "test",
            config=config,
            notification=notification,
            renderer=renderer,
            send_message=send_message,
        )
        return report


def _check_no_defaults(obj: object, impls: Mapping[str, pluggy.HookImpl]) -> None:
    """pluggy never passes a hook argument that has a default value: say so at load."""
    for name, impl in impls.items():
        spec_args = set(inspect.signature(getattr(hookspecs, name)).parameters)
        for parameter in inspect.signature(impl.function).parameters.values():
            if parameter.name in spec_args and parameter.default is not parameter.empty:
                raise pluggy.PluginValidationError(
                    obj,
                    f"hook {name}: parameter {parameter.name!r} has a default value, so "
                    "pluggy would never pass it; remove the default",
                )


def _names(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(n.strip() for n in value.split(",") if n.strip())


class PluginRegistry:
    """The channel types available to this process."""

    def __init__(self, *, entry_points: bool = True, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self._allow = _names(env.get(ALLOW_ENV))
        self._block = _names(env.get(BLOCK_ENV)) or frozenset()
        self._want_entry_points = entry_points
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, ChannelPlugin] = {}
        self._skipped: dict[str, str] = {}
        self.failures: list[LoadFailure] = []
        self._loaded = False
        self._lock = threading.Lock()

    # -- loading ------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        with self._lock:
            if not self._loaded:
                self._loaded = True
                if self._want_entry_points:
                    self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "(unknown)"
            version = ep.dist.version if ep.dist else ""
            if self._allow is not None and ep.name not in self._allow:
                self._skipped[ep.name] = f"not in {ALLOW_ENV}"
                continue
            if ep.name in self._block:
                self._skipped[ep.name] = f"disabled by {BLOCK_ENV}"
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - reported, the others still load
                self._fail(ep.name, dist, version, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self._add(ep.name, obj, dist, version)

    def _fail(self, name: str, dist: str, version: str, error: str) -> None:
        log.warning("dbnotify plugin %r from %s could not be loaded: %s", name, dist, error)
        self.failures.append(LoadFailure(name, dist, version, error))

    def _add(self, name: str, obj: object, dist: str, version: str) -> ChannelPlugin | None:
        if name in self._plugins:
            self._fail(
                name,
                dist,
                version,
                f"channel type {name!r} is already provided by {self._plugins[name].distribution}",
            )
            return None
        try:
            self._pm.register(obj, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._fail(name, dist, version, f"invalid plugin: {exc}")
            return None
        try:
            self._pm.check_pending()
            impls = self._impls_of(obj)
            _check_no_defaults(obj, impls)
            missing = [h for h in hookspecs.HOOK_NAMES if h not in impls]
            if missing:
                raise pluggy.PluginValidationError(obj, f"missing hooks: {', '.join(missing)}")
            info: object = impls["channel_info"].function()
            if not isinstance(info, ChannelInfo):
                raise pluggy.PluginValidationError(obj, "channel_info must return ChannelInfo")
        except Exception as exc:  # noqa: BLE001 - reported, the others still load
            self._pm.unregister(obj)
            self._fail(name, dist, version, f"invalid plugin: {exc}")
            return None
        plugin = ChannelPlugin(name, dist, version, info, impls)
        self._plugins[name] = plugin
        return plugin

    def _impls_of(self, obj: object) -> dict[str, pluggy.HookImpl]:
        found: dict[str, pluggy.HookImpl] = {}
        for caller in self._pm.get_hookcallers(obj) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is obj:
                    found[caller.name] = impl
        return found

    def register(
        self,
        name: str,
        obj: object,
        *,
        distribution: str = "(registered in code)",
        version: str = "",
    ) -> ChannelPlugin:
        """Add a plugin object by hand (tests, embedded plugins). Raises if it is invalid."""
        self._ensure_loaded()
        before = len(self.failures)
        plugin = self._add(name, obj, distribution, version)
        if plugin is None:
            raise ValueError(self.failures[before].error)
        return plugin

    # -- queries ------------------------------------------------------------------

    def get(self, channel_type: str) -> ChannelPlugin | None:
        self._ensure_loaded()
        return self._plugins.get(channel_type)

    def types(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._plugins)

    def all(self) -> list[ChannelPlugin]:
        self._ensure_loaded()
        return [self._plugins[t] for t in sorted(self._plugins)]

    def skipped(self) -> dict[str, str]:
        self._ensure_loaded()
        return dict(self._skipped)

    def explain_missing(self, channel_type: str) -> str:
        """Why ``channel_type`` is not available, in words an operator can act on."""
        self._ensure_loaded()
        for failure in self.failures:
            if failure.name == channel_type:
                return (
                    f"channel type {channel_type!r} is installed ({failure.distribution}) "
                    f"but failed to load: {failure.error}"
                )
        if channel_type in self._skipped:
            return f"channel type {channel_type!r} is {self._skipped[channel_type]}"
        installed = ", ".join(self.types()) or "none"
        return (
            f"unknown channel type {channel_type!r}"
            + did_you_mean(channel_type, self._plugins)
            + f" (installed: {installed}; channel types come from plugins such as "
            "dbnotify-email)"
        )


@functools.cache
def default_registry() -> PluginRegistry:
    """The process-wide registry, filled from entry points on first use."""
    return PluginRegistry()
