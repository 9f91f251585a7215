"""Loading a configuration: read the file, validate every part of it, report all at once.

The top of the configuration's layers: the one module of :mod:`dbnotify.config` that
imports the plugin registry (each channel's block is validated by its plugin) and the
renderer (an operator's templates are compiled, so that ``validate`` finds their errors).
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from dbnotify.config.fields import did_you_mean, file_key, setting
from dbnotify.config.model import (
    CORE_CHANNEL_KEYS,
    ChannelSettings,
    Config,
    DigestRule,
    DispatchSettings,
    GroupingRule,
    OutboxSettings,
    QuietHours,
    RateLimit,
    RenderingSettings,
    Routing,
    ServeSettings,
    Writer,
)
from dbnotify.config.structure import structure
from dbnotify.errors import ConfigError, ConfigIssue
from dbnotify.events import CATALOGUE, JobRule, NotifyUser
from dbnotify.plugins import PluginRegistry, default_registry
from dbnotify.rendering import Renderer, files_not_templates
from dbnotify.windows import excepted


@attrs.frozen
class FileLayout:
    """The top level of the file (channels are validated by their plugins)."""

    channels: dict[str, dict[str, Any]] = setting(factory=dict, description="channels by name")
    routing: Routing = setting(factory=Routing, description="which events go where")
    jobs: dict[str, JobRule] = setting(factory=dict, description="per backup job")
    rendering: RenderingSettings = setting(factory=RenderingSettings, description="messages")
    dispatch: DispatchSettings = setting(factory=DispatchSettings, description="delivery")
    outbox: OutboxSettings | None = setting(
        default=None, description="durable delivery (without it: direct, in memory)"
    )
    grouping: dict[str, GroupingRule] = setting(
        factory=dict, description="storm control per event type, and 'default' (needs outbox)"
    )
    digest: dict[str, DigestRule] = setting(
        factory=dict, description="scheduled summaries instead of one message each (needs outbox)"
    )
    serve: ServeSettings | None = setting(
        default=None, description="dbnotify serve: the HTTP API and the web console"
    )


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's TOML; whatever stops that is a :class:`ConfigError` that says why."""
    where = repr(str(path))

    def refuse(message: str) -> ConfigError:
        return ConfigError([ConfigIssue("", message)])

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise refuse(f"configuration file {where} not found") from None
    except IsADirectoryError:
        raise refuse(f"configuration file {where} is a folder; name the TOML file in it") from None
    except PermissionError:
        raise refuse(
            f"configuration file {where} is not readable by this user; check its permissions"
        ) from None
    except OSError as exc:
        raise refuse(f"cannot read configuration file {where}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(
            f"{path}: not valid TOML: not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise refuse(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise refuse(f"{path}: not valid TOML: nested too deeply") from None


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    plugins: PluginRegistry | None = None,
) -> Config:
    """Read a TOML file (or take the same structure as a dict) and validate all of it."""
    registry = plugins or default_registry()
    raw = dict(source) if isinstance(source, Mapping) else read_toml(source)
    issues: list[ConfigIssue] = []
    try:
        layout = structure(FileLayout, raw)
    except ConfigError as exc:
        # Report these, then carry on with the sections that were fine, so that one bad
        # section does not hide the problems of the others.
        issues.extend(exc.issues)
        layout = _salvage(FileLayout, raw)
    blocks: Mapping[str, Any] = layout.channels
    channels: dict[str, ChannelSettings] = {}
    for name, block in blocks.items():
        where = f"channels.{name}"
        kind = block.get("type")
        if not isinstance(kind, str):
            issues.append(
                ConfigIssue(
                    f"{where}.type",
                    'required, not set; e.g. type = "email"'
                    f" (installed: {', '.join(registry.types()) or 'none'})",
                )
            )
            continue
        plugin = registry.get(kind)
        if plugin is None:
            issues.append(ConfigIssue(f"{where}.type", registry.explain_missing(kind)))
            continue
        options = {k: v for k, v in block.items() if k not in CORE_CHANNEL_KEYS}
        quiet: QuietHours | None = None
        if "quiet_hours" in block:
            try:
                quiet = structure(QuietHours, block["quiet_hours"])
            except ConfigError as exc:
                issues.extend(exc.prefixed(f"{where}.quiet_hours").issues)
        rate: RateLimit | None = None
        if "rate_limit" in block:
            try:
                rate = RateLimit.parse(block["rate_limit"])
            except ValueError as exc:
                issues.append(ConfigIssue(f"{where}.rate_limit", str(exc)))
        try:
            channels[name] = ChannelSettings(
                name, kind, plugin.validate_config(options), quiet, rate
            )
        except ConfigError as exc:
            issues.extend(exc.prefixed(where).issues)
    found = raw.get("channels")
    declared = {str(k) for k in found} if isinstance(found, Mapping) else set(channels)
    if layout.rendering.templates_dir is not None:
        issues.extend(_check_templates(layout.rendering))
    issues.extend(_check_references(layout, channels, registry, declared))
    if issues:
        raise ConfigError(issues)
    return Config(
        channels,
        layout.routing,
        layout.jobs,
        layout.rendering,
        layout.dispatch,
        layout.outbox,
        layout.grouping,
        layout.digest,
        layout.serve,
    )


def _check_outbox(outbox: OutboxSettings) -> list[ConfigIssue]:
    """One store, and the settings that belong to it."""
    if outbox.path is None and outbox.url is None:
        return [
            ConfigIssue(
                "outbox",
                'set path (a SQLite file: path = "/var/lib/dbackup/dbnotify-outbox.sqlite") '
                'or url (PostgreSQL: url = "postgresql://dbnotify@db.internal:5432/dbnotify")',
            )
        ]
    if outbox.path is not None and outbox.url is not None:
        return [
            ConfigIssue(
                "outbox",
                "path and url are both set; keep one (to move a SQLite outbox to PostgreSQL, "
                "run dbnotify outbox copy --to URL, then remove path)",
            )
        ]
    if outbox.path is not None and outbox.password is not None:
        return [ConfigIssue("outbox.password", "is for url (PostgreSQL); a SQLite path has none")]
    if outbox.url is not None and outbox.writer is Writer.PROCESS:
        return [
            ConfigIssue(
                "outbox.writer",
                '"process" is for path (SQLite); a PostgreSQL outbox does its work on its '
                "server: remove writer",
            )
        ]
    return []


def _salvage(cl: Any, raw: Any) -> Any:
    """The valid part of ``raw`` as ``cl``, bad keys left out (their issues are reported
    already), so that one mistake does not hide the reference errors beside it: a typo in
    ``routing.events.x.notify_user`` must not hide one in ``routing.channels``."""
    try:
        return structure(cl, raw)
    except ConfigError:
        if not isinstance(raw, Mapping):
            raise
    if getattr(cl, "__origin__", None) is dict:
        kept: dict[str, Any] = {}
        for key, value in raw.items():
            with contextlib.suppress(ConfigError):
                kept[str(key)] = _salvage(cl.__args__[1], value)
        return kept
    if not attrs.has(cl):
        raise ConfigError([])
    attrs.resolve_types(cl)
    by_key = {file_key(a): a for a in attrs.fields(cl) if a.init}
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key in by_key:
            with contextlib.suppress(ConfigError):
                fields[key] = _salvage(by_key[key].type, value)
    return structure(cl, fields)


def _check_templates(settings: RenderingSettings) -> list[ConfigIssue]:
    """Compile the operator's templates now, so that ``validate`` finds their errors;
    first, refuse any of its entries that is not a file (reading a FIFO waits forever)."""
    folder = os.path.expanduser(settings.templates_dir or "")
    if found := files_not_templates(folder):
        return [ConfigIssue("rendering.templates_dir", problem) for problem in found]
    try:
        Renderer(settings)
    except ConfigError as exc:
        return list(exc.issues)
    return []


def _check_fallbacks(layout: FileLayout, declared: set[str]) -> list[ConfigIssue]:
    """Fallback channels exist, need the outbox (they are told of what it records), and
    never lead back to the channel they stand in for."""
    routing = layout.routing
    issues: list[ConfigIssue] = []

    def check(path: str, name: str) -> None:
        if name not in declared:
            issues.append(
                ConfigIssue(
                    path,
                    f"no channel named {name!r}"
                    + (
                        did_you_mean(name, declared)
                        or f" (defined: {', '.join(sorted(declared)) or 'none'})"
                    ),
                )
            )

    if routing.fallback is not None:
        check("routing.fallback", routing.fallback)
    for channel, fallback in routing.fallbacks.items():
        check("routing.fallbacks", channel)
        check(f"routing.fallbacks.{channel}", fallback)
        if fallback == channel:
            issues.append(
                ConfigIssue(
                    f"routing.fallbacks.{channel}",
                    "a channel cannot be its own fallback; name another channel",
                )
            )
    if (routing.fallback is not None or routing.fallbacks) and layout.outbox is None:
        issues.append(
            ConfigIssue(
                "routing.fallback" if routing.fallback is not None else "routing.fallbacks",
                "a fallback is told when the outbox parks a channel or gives up a delivery; "
                'add [outbox] (e.g. path = "/var/lib/dbackup/dbnotify-outbox.sqlite")',
            )
        )
    for start in routing.fallbacks:
        seen = [start]
        while (step := routing.fallback_for(seen[-1])) is not None and step not in seen:
            seen.append(step)
        if step is not None and step == start and len(seen) > 1:
            issues.append(
                ConfigIssue(
                    f"routing.fallbacks.{start}",
                    "fallbacks go round in a circle ("
                    + " -> ".join([*seen, start])
                    + "); end the chain at a channel with no fallback",
                )
            )
            break
    return issues


def _check_references(
    layout: FileLayout,
    channels: Mapping[str, ChannelSettings],
    registry: PluginRegistry,
    declared: set[str],
) -> list[ConfigIssue]:
    """Cross-references: channel names exist, notify_user only where it means something.

    ``declared`` holds every channel name in the file, valid or not: a channel whose block
    has errors is reported there, not again as missing wherever it is named.
    """
    issues: list[ConfigIssue] = []

    def check_names(path: str, names: Iterable[str] | None) -> None:
        for index, name in enumerate(names or ()):
            if name not in declared:
                issues.append(
                    ConfigIssue(
                        f"{path}[{index}]",
                        f"no channel named {name!r}"
                        + (
                            did_you_mean(name, declared)
                            or f" (defined: {', '.join(sorted(declared)) or 'none'})"
                        ),
                    )
                )

    check_names("routing.channels", layout.routing.channels)
    issues.extend(_check_fallbacks(layout, declared))
    for event_type, rule in layout.routing.events.items():
        where = f"routing.events.{event_type}"
        if event_type not in CATALOGUE:
            hint = did_you_mean(event_type, CATALOGUE)
            if hint:
                issues.append(
                    ConfigIssue(
                        where,
                        "unknown event type" + hint + " (custom event types are allowed, but this "
                        "one looks like a typo)",
                    )
                )
        check_names(f"{where}.channels", rule.channels)
        spec = CATALOGUE.get(event_type)
        if rule.notify_user is not NotifyUser.NONE and not (spec and spec.user_event):
            issues.append(
                ConfigIssue(
                    f"{where}.notify_user",
                    "only user_login and user_created can notify the user "
                    f"(got {rule.notify_user.value!r})",
                )
            )
    for job, job_rule in layout.jobs.items():
        check_names(f"jobs.{job}.channels", job_rule.channels)
    if layout.outbox is not None:
        issues.extend(_check_outbox(layout.outbox))
    for event_type in layout.grouping:
        hint = did_you_mean(event_type, [*CATALOGUE, "default"])
        if event_type not in CATALOGUE and event_type != "default" and hint:
            issues.append(
                ConfigIssue(
                    f"grouping.{event_type}",
                    "unknown event type" + hint + " (custom event types are allowed, but "
                    "this one looks like a typo)",
                )
            )
    holding = [
        *(["grouping"] if layout.grouping else []),
        *(["digest"] if layout.digest else []),
        *(f"channels.{n}.quiet_hours" for n, c in channels.items() if c.quiet_hours),
        *(f"channels.{n}.rate_limit" for n, c in channels.items() if c.rate_limit),
    ]
    if holding and layout.outbox is None:
        issues.append(
            ConfigIssue(
                holding[0],
                "holds notifications in the outbox to send them together later; add "
                '[outbox] (e.g. path = "/var/lib/dbackup/dbnotify-outbox.sqlite")',
            )
        )
    for name, digest in layout.digest.items():
        check_names(f"digest.{name}.channels", digest.channels)
        for index, event_type in enumerate(digest.events):
            hint = did_you_mean(event_type, CATALOGUE)
            if event_type not in CATALOGUE and hint:
                issues.append(
                    ConfigIssue(
                        f"digest.{name}.events[{index}]",
                        "unknown event type" + hint + " (custom event types are allowed, "
                        "but this one looks like a typo)",
                    )
                )
    for event_type in layout.outbox.retry if layout.outbox else ():
        hint = did_you_mean(event_type, [*CATALOGUE, "default"])
        if event_type not in CATALOGUE and event_type != "default" and hint:
            issues.append(
                ConfigIssue(
                    f"outbox.retry.{event_type}",
                    "unknown event type" + hint + " (custom event types are allowed, but "
                    "this one looks like a typo)",
                )
            )
    user_channel = layout.routing.user_channel
    if user_channel is not None:
        if user_channel not in declared:
            issues.append(
                ConfigIssue(
                    "routing.user_channel",
                    f"no channel named {user_channel!r}" + did_you_mean(user_channel, declared),
                )
            )
        elif user_channel in channels:
            plugin = registry.get(channels[user_channel].type)
            if plugin is not None and not plugin.info.user_delivery:
                issues.append(
                    ConfigIssue(
                        "routing.user_channel",
                        f"channel {user_channel!r} (type {channels[user_channel].type}) cannot "
                        "deliver to a user's address; name an email channel",
                    )
                )
    return issues


FALLBACK_NOTICE = "system_error"
"""The event type of the notice a fallback channel gets when a channel breaks (the
outbox worker sends it); its severity is the catalogue's (failure)."""


def fallback_warnings(config: Config) -> list[ConfigIssue]:
    """Valid settings that hold a fallback's notice back: its quiet hours when their
    ``except`` names neither ``system_error`` nor ``failure``, a digest of
    ``system_error`` that names it. The notice is then told only when the window ends or
    the digest goes, which is seldom what a fallback is for. A ``rate_limit`` is no
    reason to warn: the notice comes once per channel and kind an hour, and a rate limit
    holds what goes over it for one period at most."""
    severity = CATALOGUE[FALLBACK_NOTICE].severity.value
    stands_in: dict[str, list[str]] = {}
    for name in config.channels:
        fallback = config.routing.fallback_for(name)
        if fallback is not None and fallback in config.channels:
            stands_in.setdefault(fallback, []).append(name)
    issues: list[ConfigIssue] = []
    for fallback, broken in stands_in.items():
        of = f"{fallback} is the fallback of {', '.join(broken)}"
        quiet = config.channels[fallback].quiet_hours
        if quiet is not None and not excepted(quiet, FALLBACK_NOTICE, severity):
            issues.append(
                ConfigIssue(
                    f"channels.{fallback}.quiet_hours",
                    f"holds the notice that a channel broke ({FALLBACK_NOTICE}, {severity}) "
                    f"until the quiet hours end ({quiet.to} {quiet.timezone}), and {of}; add "
                    f'"{severity}" to except to be told at once',
                )
            )
        for name, digest in config.digest.items():
            if FALLBACK_NOTICE in digest.events and fallback in digest.channels:
                issues.append(
                    ConfigIssue(
                        f"digest.{name}",
                        f"holds the notice that a channel broke ({FALLBACK_NOTICE}) until "
                        f"the digest at {digest.at} {digest.timezone}, and {of}; take "
                        f"{FALLBACK_NOTICE} out of its events or {fallback} out of its "
                        "channels to be told at once",
                    )
                )
    return issues
