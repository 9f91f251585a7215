"""Finding, loading and calling channel plugins.

Plugins come from the entry-point group ``dbnotify.channels``. Finding them is cheap: it
reads the installed distributions' metadata (:mod:`dbnotify.installed`) and imports
nothing. Each plugin is imported and validated lazily, the first time its channel type
is needed (:meth:`PluginRegistry.get`), once per registry. A plugin that fails to import
or to validate is recorded as a :class:`LoadFailure` (name, distribution, error) and the
others still load.

Environment:

``DBNOTIFY_PLUGINS``
    comma-separated channel types: load only these.
``DBNOTIFY_DISABLE_PLUGINS``
    comma-separated channel types: never load these.

This module imports only the standard library, attrs, pluggy and the configuration's
leaves at import time. ``dbnotify plugins`` does not import it: it lists what is installed
from :mod:`dbnotify.installed` alone.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from dbnotify import hookspecs
from dbnotify.config.fields import did_you_mean
from dbnotify.errors import ConfigError, ConfigIssue
from dbnotify.hookspecs import ChannelInfo
from dbnotify.installed import ALLOW_ENV as ALLOW_ENV
from dbnotify.installed import BLOCK_ENV as BLOCK_ENV
from dbnotify.installed import GROUP as GROUP
from dbnotify.installed import UNKNOWN_DISTRIBUTION as UNKNOWN_DISTRIBUTION
from dbnotify.installed import Choice, Declared, declared

if TYPE_CHECKING:
    from dbnotify.events import Notification
    from dbnotify.rendering import Renderer
    from dbnotify.results import RecipientResult, TestReport

log = logging.getLogger(__name__)

PLUGIN_FAILURES = (Exception, SystemExit)
"""What a plugin's import or hook may raise and still be a reported failure, not the end
of the process: ``SystemExit`` too (a plugin that calls ``sys.exit`` at import)."""


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
        except PLUGIN_FAILURES as exc:  # a plugin bug is reported, not a crash
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

    def preview(self, config: Any, notification: Notification, renderer: Renderer) -> str | None:
        """What ``send`` would put on the wire, or ``None`` when the plugin cannot say."""
        if "preview" not in self._impls:
            return None
        text: str = self._call(
            "preview", config=config, notification=notification, renderer=renderer
        )
        return text

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


@attrs.frozen
class InstalledPlugin:
    """A channel type as installed: read from its distribution's metadata, not imported.

    ``skipped`` is why ``DBNOTIFY_PLUGINS`` / ``DBNOTIFY_DISABLE_PLUGINS`` keep it from
    loading (``"disabled by DBNOTIFY_DISABLE_PLUGINS"``), or ``None`` when it may load.
    Whether it *does* load (imports, has valid hooks) is known only once it is loaded:
    :meth:`PluginRegistry.get` or :meth:`PluginRegistry.all`.
    """

    type: str
    distribution: str
    version: str
    summary: str
    """The distribution's one-line description (``Summary``, from ``description`` in its
    pyproject.toml); ``""`` when it has none."""
    skipped: str | None = None

    @property
    def allowed(self) -> bool:
        """True unless the environment keeps this plugin from loading."""
        return self.skipped is None


class PluginRegistry:
    """The channel types available to this process.

    Nothing is read before first use. Then the entry points are found (once; a
    distribution installed later is not seen by this registry), without importing any
    plugin. :meth:`get` imports and validates one channel type's plugin, the first time
    it is asked for; :meth:`all` does so for every channel type. Loading is thread-safe
    and happens at most once per channel type.
    """

    def __init__(self, *, entry_points: bool = True, environ: Mapping[str, str] | None = None):
        self._choice = Choice(os.environ if environ is None else environ)
        self._want_entry_points = entry_points
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._found: list[Declared] | None = None
        self._by_type: dict[str, list[Declared]] = {}
        self._attempted: set[str] = set()
        self._plugins: dict[str, ChannelPlugin] = {}
        self._skipped: dict[str, str] = {}
        self.failures: list[LoadFailure] = []
        """The plugins that could not be loaded, among those loaded so far."""
        # Re-entrant: a plugin's import may itself ask the registry for something.
        self._lock = threading.RLock()

    # -- finding (no import) ------------------------------------------------------

    def _discover(self) -> list[Declared]:
        """The group's entry points, found once; call with the lock held."""
        if self._found is None:
            found: list[Declared] = []
            if self._want_entry_points:
                found = declared(GROUP)
                found.sort(key=lambda f: f.name)  # stable: duplicates keep their order
            for item in found:
                reason = self._choice.skip_reason(item.name)
                if reason is None:
                    self._by_type.setdefault(item.name, []).append(item)
                else:
                    self._skipped[item.name] = reason
            self._found = found
        return self._found

    # -- loading ------------------------------------------------------------------

    def _load_type(self, name: str) -> None:
        """Import and validate the plugin(s) of one channel type, once; lock held."""
        self._discover()
        if name in self._attempted:
            return
        self._attempted.add(name)
        for item in self._by_type.get(name, ()):
            dist, version, _summary = item.meta()
            try:
                obj = item.load()
            except PLUGIN_FAILURES as exc:  # reported, the others still load
                self._fail(name, dist, version, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self._add(name, obj, dist, version)

    def _load_all(self) -> None:
        self._discover()
        for name in sorted(self._by_type):
            self._load_type(name)

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
        except PLUGIN_FAILURES as exc:  # reported, the others still load
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
        """Add a plugin object by hand (tests, embedded plugins). Raises if it is invalid.

        An installed plugin of the same channel type (not skipped by the environment) is
        loaded first, and keeps the type: registering then raises ``ValueError``.
        """
        with self._lock:
            self._load_type(name)
            before = len(self.failures)
            plugin = self._add(name, obj, distribution, version)
            if plugin is None:
                raise ValueError(self.failures[before].error)
            return plugin

    # -- queries ------------------------------------------------------------------

    def get(self, channel_type: str) -> ChannelPlugin | None:
        """The plugin of ``channel_type``, imported and validated on first use; ``None``
        when it is not installed, skipped or failed to load (see :meth:`explain_missing`).
        Only this channel type's plugin is imported."""
        with self._lock:
            self._load_type(channel_type)
            return self._plugins.get(channel_type)

    def types(self) -> list[str]:
        """The channel types that may be used, without importing any plugin: installed
        and not skipped by the environment, plus those registered in code.

        A type listed here may still fail to load: :meth:`get` says.
        """
        with self._lock:
            self._discover()
            return sorted({*self._by_type, *self._plugins})

    def all(self) -> list[ChannelPlugin]:
        """Every plugin that loads, sorted by channel type: imports all of them (those
        that fail are then in :attr:`failures`)."""
        with self._lock:
            self._load_all()
            return [self._plugins[t] for t in sorted(self._plugins)]

    def installed(self) -> list[InstalledPlugin]:
        """What the entry points offer, from the distributions' metadata alone: no plugin
        is imported. Skipped ones are included (see :attr:`InstalledPlugin.skipped`);
        plugins registered in code are not (they are not installed)."""
        with self._lock:
            return [
                InstalledPlugin(f.name, *f.meta(), skipped=self._skipped.get(f.name))
                for f in self._discover()
            ]

    def skipped(self) -> dict[str, str]:
        """Channel types installed but kept from loading by the environment, and why."""
        with self._lock:
            self._discover()
            return dict(self._skipped)

    def environment_problems(self) -> list[str]:
        """Names in ``DBNOTIFY_PLUGINS`` / ``DBNOTIFY_DISABLE_PLUGINS`` that no installed
        plugin provides (a typo there would silently load nothing, or block nothing)."""
        with self._lock:
            found = [f.name for f in self._discover()]
        return self._choice.problems(found)

    def explain_missing(self, channel_type: str) -> str:
        """Why ``channel_type`` is not available, in words an operator can act on."""
        with self._lock:
            self._load_type(channel_type)
            for failure in self.failures:
                if failure.name == channel_type:
                    return (
                        f"channel type {channel_type!r} is installed ({failure.distribution}) "
                        f"but failed to load: {failure.error}"
                    )
            if channel_type in self._skipped:
                return "; ".join(
                    [
                        f"channel type {channel_type!r} is {self._skipped[channel_type]}",
                        *self.environment_problems(),
                    ]
                )
            names = self.types()
        return (
            f"unknown channel type {channel_type!r}"
            + did_you_mean(channel_type, names)
            + f" (installed: {', '.join(names) or 'none'}; channel types come from plugins "
            "such as dbnotify-email)"
        )


@functools.cache
def default_registry() -> PluginRegistry:
    """The process-wide registry: entry points found on first use, each plugin imported
    when its channel type is first needed."""
    return PluginRegistry()
