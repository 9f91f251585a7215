"""Configuration: attrs classes, structured by cattrs, with errors people can act on.

cattrs alone stops at the first unknown key and never reports attrs validators, so
structuring goes through one hook factory (:func:`_attrs_hook`) that collects, for every
attrs class: unknown keys (with a did-you-mean), type errors per field, and validator
errors, each with its path. All of them are reported at once as a :class:`ConfigError`.

Plugins use the same machinery for their own blocks: ``structure(MyConfig, raw)``.
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NewType, TypeVar

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote

from dbnotify.events import CATALOGUE, JobRule, NotifyUser
from dbnotify.secrets import Secret

if TYPE_CHECKING:
    from dbnotify.plugins import PluginRegistry

T = TypeVar("T")

# --- errors --------------------------------------------------------------------------


@attrs.frozen
class ConfigIssue:
    """One problem: where (``channels.ops-mail.port``) and what (``must be ...``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Every problem found in a configuration, each with its path."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__(self._summary())

    def _summary(self) -> str:
        count = len(self.issues)
        head = f"{count} configuration error{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])

    def prefixed(self, prefix: str) -> ConfigError:
        return ConfigError(ConfigIssue(join_path(prefix, i.path), i.message) for i in self.issues)


class InvalidField(ValueError):
    """Raised from ``__attrs_post_init__`` for a check across fields: names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def join_path(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'host'?`` for the closest choice, ignoring case; else ``""``."""
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[match[0]]!r}?" if match else ""


def describe_value(value: Any) -> str:
    """How a bad value is echoed in a message (secrets never are)."""
    if isinstance(value, Secret):
        return "a secret"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- field helpers -------------------------------------------------------------------


def setting(
    *,
    description: str,
    default: Any = attrs.NOTHING,
    key: str | None = None,
    validator: Callable[[Any, attrs.Attribute[Any], Any], None] | None = None,
    factory: Callable[[], Any] | None = None,
    converter: Callable[[Any], Any] | None = None,
    example: str | None = None,
) -> Any:
    """An attrs field with the metadata our errors and docs use.

    ``key`` is the name in the file when it differs from the attribute (``from`` ->
    ``from_``); ``example`` is shown when a required key is missing.
    """
    metadata = {"description": description, "key": key, "example": example}
    if factory is not None:
        return attrs.field(
            factory=factory, validator=validator, metadata=metadata, converter=converter
        )
    return attrs.field(default=default, validator=validator, metadata=metadata, converter=converter)


def in_range(low: float, high: float) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_inst: Any, _attr: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not low <= value <= high:
            raise ValueError(f"must be between {low} and {high} (got {value})")

    return check


def positive(_inst: Any, _attr: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"must be greater than 0 (got {value})")


def non_empty(_inst: Any, _attr: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and len(value) == 0:
        raise ValueError("must not be empty")


def file_key(attribute: attrs.Attribute[Any]) -> str:
    key = attribute.metadata.get("key")
    return key if key else attribute.name


Duration = NewType("Duration", float)
"""Seconds: a number, or a string such as ``"30s"``, ``"5m"``, ``"1h"``, ``"2d"``."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any, _cl: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match[1]) * _UNIT[match[2]]
    else:
        raise ValueError(
            f'must be seconds, or a duration such as "30s", "5m", "1h", "2d" '
            f"(got {describe_value(value)})"
        )
    if seconds <= 0:
        raise ValueError(f"must be more than 0 seconds (got {describe_value(value)})")
    return seconds


# --- the converter -------------------------------------------------------------------


def _strict(kind: type, noun: str) -> Callable[[Any, type], Any]:
    def hook(value: Any, _cl: type) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"must be {noun} (got {describe_value(value)})")
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise ValueError(f"must be {noun} (got {describe_value(value)})")
        return value

    return hook


def _enum_hook(value: Any, cl: type[enum.Enum]) -> Any:
    choices = [str(m.value) for m in cl]
    try:
        return cl(value)
    except ValueError:
        raise ValueError(
            f"must be one of {', '.join(choices)} (got {describe_value(value)})"
            + (did_you_mean(value, choices) if isinstance(value, str) else "")
        ) from None


def _secret_hook(value: Any, _cl: type) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    if isinstance(value, Mapping) and set(value) == {"env"}:
        name = value["env"]
        if not isinstance(name, str) or not name:
            raise ValueError(
                "env must name an environment variable, e.g. "
                f'{{ env = "SMTP_PASSWORD" }} (got {describe_value(name)})'
            )
        if name not in os.environ:
            raise ValueError(
                f"environment variable {name} is not set; export it, or use "
                '{ file = "/path" } or a literal value'
            )
        return Secret(os.environ[name], source=f"env {name}")
    if isinstance(value, Mapping) and set(value) == {"file"}:
        path = Path(str(value["file"])).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(
                f"cannot read secret file {str(path)!r}: {exc.strerror or exc}"
            ) from None
        return Secret(text.rstrip("\r\n"), source=f"file {path}")
    got = (
        "a table with keys " + ", ".join(value)
        if isinstance(value, Mapping)
        else type(value).__name__
    )
    raise ValueError(f'must be a string, {{ env = "NAME" }} or {{ file = "/path" }} (got {got})')


def _tuple_hook(converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    def hook(value: Any, cl: Any) -> Any:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ValueError(f"must be a list (got {describe_value(value)})")
        (item_type, *_rest) = cl.__args__
        issues: list[ConfigIssue] = []
        items = []
        for index, item in enumerate(value):
            try:
                items.append(converter.structure(item, item_type))
            except Exception as exc:  # noqa: BLE001 - turned into located issues
                issues.extend(_issues(exc, f"[{index}]"))
        if issues:
            raise ConfigError(issues)
        return tuple(items)

    return hook


def _dict_hook(converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    def hook(value: Any, cl: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a table (got {describe_value(value)})")
        _key_type, value_type = cl.__args__
        issues: list[ConfigIssue] = []
        result = {}
        for key, item in value.items():
            try:
                result[str(key)] = converter.structure(item, value_type)
            except Exception as exc:  # noqa: BLE001
                issues.extend(_issues(exc, str(key)))
        if issues:
            raise ConfigError(issues)
        return result

    return hook


def _issues(exc: BaseException, path: str) -> list[ConfigIssue]:
    """Flatten whatever structuring raised into located issues."""
    if isinstance(exc, ConfigError):
        return [ConfigIssue(join_path(path, i.path), i.message) for i in exc.issues]
    if isinstance(exc, IterableValidationError):
        found: list[ConfigIssue] = []
        for sub in exc.exceptions:
            notes = [
                n for n in getattr(sub, "__notes__", []) if isinstance(n, IterableValidationNote)
            ]
            where = f"[{notes[0].index!r}]" if notes else ""
            found.extend(_issues(sub, path + where))
        return found
    if isinstance(exc, BaseExceptionGroup):
        return [i for sub in exc.exceptions for i in _issues(sub, path)]
    if isinstance(exc, InvalidField):
        return [ConfigIssue(join_path(path, exc.field), str(exc))]
    if isinstance(exc, ValueError | TypeError):
        return [ConfigIssue(path, str(exc))]
    return [ConfigIssue(path, f"{type(exc).__name__}: {exc}")]


def _attrs_hook(converter: cattrs.Converter) -> Callable[[type], Callable[[Any, type], Any]]:
    def factory(cl: type) -> Callable[[Any, type], Any]:
        attrs.resolve_types(cl)  # string annotations -> types, for cattrs
        fields = attrs.fields(cl)
        by_key = {file_key(a): a for a in fields if a.init}

        def structure(value: Any, _cl: type) -> Any:
            if isinstance(value, cl):
                return value
            if not isinstance(value, Mapping):
                raise ValueError(f"must be a table (got {describe_value(value)})")
            issues: list[ConfigIssue] = []
            for key in value:
                if key not in by_key:
                    issues.append(
                        ConfigIssue(
                            str(key),
                            "unknown key"
                            + (did_you_mean(str(key), by_key) or f" (known: {', '.join(by_key)})"),
                        )
                    )
            kwargs: dict[str, Any] = {}
            for key, attribute in by_key.items():
                if key not in value:
                    if attribute.default is attrs.NOTHING:
                        example = attribute.metadata.get("example")
                        what = attribute.metadata.get("description")
                        issues.append(
                            ConfigIssue(
                                key,
                                "required, not set"
                                + (f" ({what})" if what else "")
                                + (f"; e.g. {key} = {example}" if example else ""),
                            )
                        )
                    continue
                try:
                    structured = converter.structure(value[key], attribute.type)
                    if attribute.validator is not None:
                        attribute.validator(None, attribute, structured)
                except Exception as exc:  # noqa: BLE001 - turned into located issues
                    issues.extend(_issues(exc, key))
                    continue
                kwargs[attribute.alias] = structured
            if issues:
                raise ConfigError(issues)
            try:
                return cl(**kwargs)
            except (ValueError, TypeError) as exc:  # cross-field checks in __attrs_post_init__
                raise ConfigError(_issues(exc, "")) from None

        return structure

    return factory


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(float, _strict(float, "a number"))
    converter.register_structure_hook(bool, _strict(bool, "true or false"))
    converter.register_structure_hook(Secret, _secret_hook)
    converter.register_structure_hook(Duration, _duration)
    converter.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum_hook
    )
    converter.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is tuple, _tuple_hook(converter)
    )
    converter.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is dict, _dict_hook(converter)
    )
    converter.register_structure_hook_factory(attrs.has, _attrs_hook(converter))
    return converter


CONVERTER = make_converter()


def structure(cl: type[T], raw: Any) -> T:
    """Structure ``raw`` into ``cl``, raising a :class:`ConfigError` with every issue.

    The one way to turn a plugin's config block into its config class.
    """
    try:
        return CONVERTER.structure(raw, cl)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(_issues(exc, "")) from None


# --- the configuration ---------------------------------------------------------------


@attrs.frozen
class EventRouting:
    enabled: bool | None = setting(
        default=None, description="send this event at all (default: the catalogue's)"
    )
    channels: tuple[str, ...] | None = setting(
        default=None, description="channels for this event instead of the global ones"
    )
    notify_user: NotifyUser = setting(
        default=NotifyUser.NONE,
        description="user_login / user_created only: none (admins), also, only (the user)",
    )


@attrs.frozen
class Routing:
    channels: tuple[str, ...] = setting(factory=tuple, description="the global channels")
    events: dict[str, EventRouting] = setting(factory=dict, description="per event type")
    user_channel: str | None = setting(
        default=None, description="channel for per-user copies (default: the first email channel)"
    )


def _timezone(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _templates_dir(_inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not Path(value).expanduser().is_dir():
        raise ValueError(f"folder {value!r} does not exist")


@attrs.frozen
class RenderingSettings:
    subject_prefix: str = setting(default="[DBackup]", description="put before every subject")
    app_name: str = setting(default="DBackup", description="shown in the footer")
    timezone: str = setting(
        default="UTC", validator=_timezone, description="time zone of timestamps shown in messages"
    )
    templates_dir: str | None = setting(
        default=None,
        validator=_templates_dir,
        description="folder whose templates override the defaults (sandboxed)",
    )


@attrs.frozen
class DispatchSettings:
    deadline: float = setting(
        default=60.0, validator=positive, description="seconds one target may take before it fails"
    )


@attrs.frozen
class RetryOverride:
    """``[outbox.retry.<event type or default>]``: any of these, over the built-in policy."""

    attempts: int | None = setting(
        default=None, validator=in_range(1, 1000), description="attempts in all"
    )
    first_delay: Duration | None = setting(default=None, description="wait before attempt 2")
    max_delay: Duration | None = setting(default=None, description="longest wait between")
    max_age: Duration | None = setting(
        default=None, description="give up when the notification is older than this"
    )


def _outbox_path(_inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    folder = Path(value).expanduser().parent
    if not folder.is_dir():
        raise ValueError(
            f"folder {str(folder)!r} does not exist; create it, or choose another path"
        )


@attrs.frozen
class OutboxSettings:
    """``[outbox]``: durable delivery through a SQLite file (several processes may share it)."""

    path: str = setting(
        validator=_outbox_path,
        description="the outbox's SQLite file",
        example='"/var/lib/dbackup/dbnotify-outbox.sqlite"',
    )
    retention: Duration = setting(
        default=Duration(30 * 86400.0), description="history kept this long (purge)"
    )
    busy_timeout: float = setting(
        default=5.0,
        validator=positive,
        description="seconds to wait for another process holding the file",
    )
    retry: dict[str, RetryOverride] = setting(
        factory=dict, description="retry limits per event type, and 'default'"
    )


@attrs.frozen
class ChannelSettings:
    """One configured channel: its name, its type, and the plugin's validated config."""

    name: str
    type: str
    config: Any = attrs.field(repr=False)


@attrs.frozen
class _FileLayout:
    """The top level of the file (channels are validated by their plugins)."""

    channels: dict[str, dict[str, Any]] = setting(factory=dict, description="channels by name")
    routing: Routing = setting(factory=Routing, description="which events go where")
    jobs: dict[str, JobRule] = setting(factory=dict, description="per backup job")
    rendering: RenderingSettings = setting(factory=RenderingSettings, description="messages")
    dispatch: DispatchSettings = setting(factory=DispatchSettings, description="delivery")
    outbox: OutboxSettings | None = setting(
        default=None, description="durable delivery (without it: direct, in memory)"
    )


@attrs.frozen
class Config:
    channels: dict[str, ChannelSettings]
    routing: Routing = attrs.field(factory=Routing)
    jobs: dict[str, JobRule] = attrs.field(factory=dict)
    rendering: RenderingSettings = attrs.field(factory=RenderingSettings)
    dispatch: DispatchSettings = attrs.field(factory=DispatchSettings)
    outbox: OutboxSettings | None = None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            [ConfigIssue("", f"configuration file {str(path)!r} not found")]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue("", f"{path}: not valid TOML: {exc}")]) from None


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    plugins: PluginRegistry | None = None,
) -> Config:
    """Read a TOML file (or take the same structure as a dict) and validate all of it."""
    from dbnotify.plugins import default_registry

    registry = plugins or default_registry()
    raw = dict(source) if isinstance(source, Mapping) else read_toml(source)
    issues: list[ConfigIssue] = []
    try:
        layout = structure(_FileLayout, raw)
    except ConfigError as exc:
        # Report these, then carry on with the sections that were fine, so that one bad
        # section does not hide the problems of the others.
        issues.extend(exc.issues)
        layout = _salvage(_FileLayout, raw)
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
        options = {k: v for k, v in block.items() if k != "type"}
        try:
            channels[name] = ChannelSettings(name, kind, plugin.validate_config(options))
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
        channels, layout.routing, layout.jobs, layout.rendering, layout.dispatch, layout.outbox
    )


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
    """Compile the operator's templates now, so that ``validate`` finds their errors."""
    from dbnotify.rendering import Renderer

    try:
        Renderer(settings)
    except ConfigError as exc:
        return list(exc.issues)
    return []


def _check_references(
    layout: _FileLayout,
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
