"""Channels kept in the configuration file: read for the API and the console, and
written back with tomlkit so that the operator's comments and layout survive.

A change is validated exactly as ``dbnotify validate`` validates the file (the whole
new document goes through :func:`dbnotify.config.load.load_config`, with the service's
plugins) before the file is replaced (write to a temporary file beside it, fsync,
rename, the file's mode kept); then the service reloads, all under
:attr:`~dbnotify.serve.service.Service.lock`.

Secret fields are write-only: reading gives only whether each is set, and an update that
leaves a secret out (or sends back ``{"set": true}``) keeps the one in the file (its
literal, ``{ env }`` or ``{ file }``). A secret given is written as given; a literal one
makes the file a password store, so the file loses its group and world permissions and
the channel carries a warning that ``{ env }`` or ``{ file }`` is better.

Deleting a channel takes it out of every list that names it (``[routing] channels``,
each event's, job's and digest's ``channels``) and drops its own fallback; it is
refused (409) while something depends on it alone: the global fallback, another
channel's fallback, or ``routing.user_channel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import attrs
import tomlkit
import tomlkit.exceptions
import tomlkit.items

from dbnotify.config.load import load_config
from dbnotify.config.model import Config
from dbnotify.delivery import Deliverer
from dbnotify.errors import ConfigError, ConfigIssue
from dbnotify.events import Event, to_notification
from dbnotify.plugins import ChannelPlugin
from dbnotify.results import TestReport
from dbnotify.schema import channel_schema
from dbnotify.secrets import credential_key
from dbnotify.serve.bodies import value_at
from dbnotify.serve.problems import ApiError, Problem, not_found, shown_value
from dbnotify.serve.service import Service

log = logging.getLogger(__name__)

SET = {"set": True}
"""What a secret reads as; sent back, it means "keep the one in the file"."""

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A new channel's name: a bare TOML key, and a path segment without escaping."""

UNSAVED = "unsaved"
"""The name a channel tested before it is saved goes by (in the test's messages)."""

SECRET_FORMS = ({"env"}, {"file"})


@attrs.frozen
class ChannelView:
    """A channel as the API and the console show it: never a secret's value."""

    name: str
    type: str
    settings: dict[str, Any]
    """The block's keys as in the file, each secret replaced by ``{"set": true}``."""
    secrets: dict[str, bool]
    """Each secret field of the type: whether it is set."""
    routed: bool
    """Whether ``[routing] channels`` names it."""
    warnings: tuple[str, ...] = ()
    """What the operator should know: a secret written in the file as a literal."""


# --- which fields are secret ---------------------------------------------------------


def _is_secret(schema: Any) -> bool:
    return isinstance(schema, Mapping) and bool(schema.get("x-secret") or schema.get("writeOnly"))


def _takes_secret_forms(schema: Any) -> bool:
    """Whether a schema accepts ``{ env }`` (a table's values that may be secrets, such as
    a webhook's headers, are not marked ``x-secret`` one by one)."""
    options = schema.get("oneOf", ()) if isinstance(schema, Mapping) else ()
    return any(
        isinstance(o, Mapping) and o.get("type") == "object" and "env" in o.get("properties", {})
        for o in options
    )


@attrs.frozen
class SecretFields:
    """Where a channel type keeps secrets: whole fields (a password, a list of URLs), and
    tables whose every value may be one (a webhook's headers)."""

    whole: frozenset[str]
    tables: frozenset[str] = frozenset()
    known: bool = True
    """False for a type not installed: then a key that looks like a credential, or a value
    in the ``{ env }`` / ``{ file }`` form, is taken for a secret."""

    def masks(self, key: str, value: Any) -> bool:
        if key in self.whole:
            return True
        return not self.known and (credential_key(key) or _secret_form(value))


def secret_fields(plugin: ChannelPlugin | None) -> SecretFields:
    """The secret fields of a channel type, from its JSON Schema (``x-secret`` /
    ``writeOnly`` on the field, its items or its values)."""
    if plugin is None:
        return SecretFields(frozenset(), known=False)
    properties = channel_schema(plugin.type, plugin.info).get("properties", {})
    whole: set[str] = set()
    tables: set[str] = set()
    for key, schema in properties.items():
        if not isinstance(schema, Mapping):
            continue
        if _is_secret(schema) or _is_secret(schema.get("items")):
            whole.add(key)
        elif _is_secret(schema.get("additionalProperties")) or _takes_secret_forms(
            schema.get("additionalProperties")
        ):
            tables.add(key)
    return SecretFields(frozenset(whole), frozenset(tables))


def _fields_of(service: Service, block: Mapping[str, Any]) -> SecretFields:
    """The secret fields of the type ``block`` names (guessed when it names none known)."""
    kind = _plain(block.get("type"))
    return secret_fields(service.plugins.get(kind) if isinstance(kind, str) and kind else None)


def _secret_form(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) in SECRET_FORMS


# --- reading -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A tomlkit value as plain Python data."""
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _read_document(service: Service) -> tomlkit.TOMLDocument:
    path = service.config_path
    try:
        text = Path(path).read_text(encoding="utf-8")
        return tomlkit.parse(text)
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
        raise ApiError(
            500,
            f"cannot read the configuration file {str(path)!r}: {exc}",
            [Problem(None, f"check the file with: dbnotify validate -c {path}")],
        ) from None


def _channels_of(document: Mapping[str, Any]) -> Mapping[str, Any]:
    found = document.get("channels")
    return found if isinstance(found, Mapping) else {}


def _masked(block: Mapping[str, Any], fields: SecretFields) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, value in _plain(block).items():
        if fields.masks(key, value):
            shown[key] = dict(SET)
        elif (key in fields.tables or not fields.known) and isinstance(value, Mapping):
            shown[key] = {
                k: dict(SET) if credential_key(k) or _secret_form(v) else v
                for k, v in value.items()
            }
        else:
            shown[key] = value
    return shown


def _literal_secrets(block: Mapping[str, Any], fields: SecretFields) -> list[str]:
    """The keys of ``block`` whose secret is written in the file as it is."""
    found = []
    for key, value in _plain(block).items():
        values = value if isinstance(value, list) else [value]
        if key in fields.whole and any(isinstance(v, str) for v in values):
            found.append(key)
        elif key in fields.tables and isinstance(value, Mapping):
            found.extend(
                f"{key}.{k}" for k, v in value.items() if isinstance(v, str) and credential_key(k)
            )
    return found


def literal_warning(keys: list[str]) -> str:
    return (
        f"{', '.join(keys)}: written in the configuration file as it is, so the file "
        "holds a password; better from the environment or a file: "
        '{ env = "NAME" } or { file = "/run/secrets/NAME" }'
    )


def _view(service: Service, document: Mapping[str, Any], name: str) -> ChannelView:
    block = _channels_of(document).get(name)
    if not isinstance(block, Mapping):
        raise not_found(f"channel {name!r}", "see GET /v1/channels for the channels configured")
    kind = _plain(block.get("type"))
    kind = kind if isinstance(kind, str) else ""
    fields = _fields_of(service, block)
    settings = _masked(block, fields)
    secrets = {key: key in settings for key in sorted(fields.whole)}
    routing = document.get("routing")
    routed_names = routing.get("channels", []) if isinstance(routing, Mapping) else []
    routed = isinstance(routed_names, list) and name in _plain(routed_names)
    literal = _literal_secrets(block, fields)
    warnings = (literal_warning(literal),) if literal else ()
    return ChannelView(name, kind, settings, secrets, routed, warnings)


def list_channels(service: Service) -> list[ChannelView]:
    """Every channel of the file, sorted by name."""
    document = _read_document(service)
    channels = _channels_of(document)
    return [
        _view(service, document, name)
        for name in sorted(channels)
        if isinstance(channels[name], Mapping)  # not a channel; dbnotify validate says so
    ]


def get_channel(service: Service, name: str) -> ChannelView:
    """One channel; :class:`~dbnotify.serve.problems.ApiError` 404 when there is none."""
    return _view(service, _read_document(service), name)


# --- from the API's JSON to the file's TOML --------------------------------------------


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ApiError(
            422,
            "invalid channel name",
            [
                Problem(
                    "name",
                    "must be 1 to 64 letters, digits, '-' or '_', starting with a letter or "
                    'digit, e.g. "ops-mail"',
                    shown_value("name", name),
                )
            ],
        )


def _toml_value(value: Any, path: str) -> Any:
    """JSON data as tomlkit items: tables inline (a channel stays one block), ``null``
    left out (TOML has none: the key takes its default)."""
    if isinstance(value, Mapping):
        table = tomlkit.inline_table()
        for key, item in value.items():
            if item is not None:
                table[str(key)] = _toml_value(item, f"{path}.{key}")
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for index, item in enumerate(value):
            if item is None:
                raise ConfigError(
                    [ConfigIssue(f"{path}[{index}]", "null cannot be in a list; leave it out")]
                )
            array.append(_toml_value(item, f"{path}[{index}]"))
        return array
    return value


DESTINATION_KEYS = frozenset({"host", "port", "preset", "security", "server_url", "api_url"})
"""Settings that decide where a channel's secrets are sent (a server, its port, TLS)."""


def _moved(block: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    """The destination settings in which ``block`` differs from the saved ``old``."""
    return sorted(k for k in DESTINATION_KEYS if _plain(block.get(k)) != _plain(old.get(k)))


def _fill_secrets(
    block: Mapping[str, Any], old: Mapping[str, Any] | None, fields: SecretFields, where: str
) -> dict[str, Any]:
    """``block`` with each secret left out (a whole field) or sent back as ``{"set":
    true}`` (anywhere) taken from ``old``, as the file has it; ``null`` or ``{"set":
    false}`` removes a secret.

    A saved secret is kept only for the destination it was saved for: when ``block``
    changes a :data:`DESTINATION_KEYS` setting, each secret must be given again, so that
    a token that may edit channels cannot send a saved password to a server of its own.
    """
    issues: list[ConfigIssue] = []
    moved = _moved(block, old) if old is not None else []

    def keep(saved: Any, path: str) -> Any:
        if moved:
            issues.append(
                ConfigIssue(
                    path,
                    f"{', '.join(moved)} changed, so give this secret again: a saved secret "
                    "is only sent to the server it was saved for",
                )
            )
            return None
        return saved

    def fill(value: Any, saved: Any, path: str) -> Any:
        if isinstance(value, Mapping) and set(value) == {"set"}:
            if value["set"] is False:
                return None
            if value["set"] is True and saved is not None:
                return keep(saved, path)
            if value["set"] is True:
                issues.append(
                    ConfigIssue(
                        path,
                        "no saved secret to keep; give it: a string, "
                        '{"env": "NAME"} or {"file": "/path"}',
                    )
                )
                return None
        if isinstance(value, Mapping):
            inner = saved if isinstance(saved, Mapping) else {}
            return {k: fill(v, inner.get(k), f"{path}.{k}") for k, v in value.items()}
        return value

    saved_block: Mapping[str, Any] = old or {}
    filled: dict[str, Any] = {
        key: fill(value, saved_block.get(key), f"{where}.{key}") for key, value in block.items()
    }
    for key in fields.whole:
        if key not in block and key in saved_block:
            filled[key] = keep(saved_block[key], f"{where}.{key}")
    if issues:
        raise ConfigError(issues)
    return filled


def _same_type(old: Any, block: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The saved block, when secrets may be taken from it: same channel type only."""
    if isinstance(old, Mapping) and _plain(old.get("type")) == block.get("type"):
        return old
    return None


def _problems(
    exc: ConfigError, name: str, block: Mapping[str, Any], fields: SecretFields
) -> list[Problem]:
    """The issues of ``dbnotify validate`` as the API names them: ``channels.NAME.port``
    is ``settings.port``; an issue elsewhere in the file keeps the file's path. A secret
    field's value is never echoed."""
    prefix = f"channels.{name}"
    problems = []
    for issue in exc.issues:
        path = issue.path
        value: Any = None
        if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
            rest = path[len(prefix) :]
            path = "settings" + rest
            top = rest.lstrip(".").replace("[", ".").partition(".")[0]
            if top == "type" or (fields.known and top not in fields.whole | fields.tables):
                value = shown_value(path, _value_at(block, rest))
        problems.append(Problem(path or None, issue.message, value))
    return problems


def _value_at(data: Any, rest: str) -> Any:
    current = value_at(data, rest)
    return None if _secret_form(current) else current  # nor where a secret comes from


def invalid_channel(
    exc: ConfigError, name: str, block: Mapping[str, Any], fields: SecretFields
) -> ApiError:
    """A 422 naming each problem as the API's body has it (``settings.port``)."""
    problems = _problems(exc, name, block, fields)
    elsewhere = any(p.field and not p.field.startswith("settings") for p in problems)
    detail = (
        "the configuration file would not be valid"
        if elsewhere
        else f"invalid settings for channel {name!r}"
    )
    return ApiError(422, detail, problems)


def _validate(text: str, service: Service) -> Config:
    """The new file's text as ``dbnotify validate`` reads it (stdlib TOML, the same
    loader, the service's plugins)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            [ConfigIssue("", "the settings hold text that is not valid Unicode (a lone surrogate)")]
        ) from None
    return load_config(tomllib.loads(text), service.plugins)


# --- writing the file ------------------------------------------------------------------


def _write_file(path: Path, text: str, *, private: bool) -> int:
    """Replace ``path`` (a link's target) with ``text``: a temporary file beside it,
    written, fsynced and renamed over it, with its mode (``private``: no group or world
    access) and, where allowed, its owner. Returns the mode written."""
    real = Path(os.path.realpath(path))
    before = real.stat()
    mode = stat.S_IMODE(before.st_mode)
    if private:
        mode &= 0o700
    handle, temporary = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, mode)
        with contextlib.suppress(PermissionError):
            if (before.st_uid, before.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(handle, before.st_uid, before.st_gid)
        with os.fdopen(handle, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    folder = os.open(real.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return mode


async def _replace(service: Service, document: tomlkit.TOMLDocument, *, private: bool) -> int:
    """Validate ``document``, write it, reload; the caller holds the lock. The file is
    left as it was when the service cannot reload from the new one."""
    text = tomlkit.dumps(document)
    _validate(text, service)
    path = Path(service.config_path)
    before = await asyncio.to_thread(path.read_text, encoding="utf-8")
    try:
        mode = await asyncio.to_thread(_write_file, path, text, private=private)
    except OSError as exc:
        raise ApiError(
            500,
            f"cannot write the configuration file {str(path)!r}: {exc.strerror or exc}",
            [Problem(None, "let the user running dbnotify serve write the file and its folder")],
        ) from None
    try:
        await service.reload()
    except ConfigError:
        await asyncio.to_thread(_write_file, path, before, private=False)
        raise
    return mode


def _set_block(table: Any, block: Mapping[str, Any], where: str) -> None:
    """Make the table ``table`` hold ``block``, in place: keys that did not change keep
    their place and comments."""
    for key in [k for k in table if k not in block]:
        del table[key]
    for key, value in block.items():
        if key in table and _plain(table[key]) == _plain(value):
            continue
        table[key] = _item(value, f"{where}.{key}")


def _item(value: Any, path: str) -> Any:
    return value if isinstance(value, tomlkit.items.Item) else _toml_value(value, path)


def _new_table(block: Mapping[str, Any], where: str) -> tomlkit.items.Table:
    table = tomlkit.table()
    for key, value in block.items():
        table[key] = _item(value, f"{where}.{key}")
    table.add(tomlkit.nl())
    return table


def _channels_table(document: tomlkit.TOMLDocument) -> Any:
    found = document.get("channels")
    if found is None:
        found = tomlkit.table(is_super_table=True)
        document["channels"] = found
    if not isinstance(found, Mapping):
        raise ApiError(
            500,
            "channels in the configuration file is not a table",
            [Problem("channels", "fix the file: channels are [channels.NAME] tables")],
        )
    return found


def _wrote_literal(
    block: Mapping[str, Any], old: Mapping[str, Any] | None, fields: SecretFields
) -> bool:
    """Whether this change writes a literal secret that the file did not hold already."""
    saved = old or {}
    return any(
        _plain(block.get(key)) != _plain(saved.get(key))
        for key in {k.partition(".")[0] for k in _literal_secrets(block, fields)}
    )


async def save_channel(
    service: Service, name: str, block: Mapping[str, Any], *, create: bool
) -> ChannelView:
    """Create (``create``: 409 if it exists) or replace the channel ``name`` with
    ``block`` (``type`` included; secrets left out are kept), validate the whole file,
    write it and reload. 422 with each problem (field, value, fix) when invalid."""
    if create:
        _check_name(name)
    async with service.lock:
        document = _read_document(service)
        channels = _channels_table(document)
        old = channels.get(name)
        if create and old is not None:
            raise ApiError(
                409,
                f"channel {name!r} exists already",
                [
                    Problem(
                        "name",
                        f"choose another name, or change it with PUT /v1/channels/{name}",
                        name,
                    )
                ],
            )
        if not create and old is None:
            raise not_found(f"channel {name!r}", "create it with POST /v1/channels")
        fields = _fields_of(service, block)
        saved = _same_type(old, block)
        try:
            filled = _fill_secrets(block, saved, fields, f"channels.{name}")
            filled = {k: v for k, v in filled.items() if v is not None}
            private = _wrote_literal(filled, _plain(saved) if saved is not None else None, fields)
            if old is None:
                channels[name] = _new_table(filled, f"channels.{name}")
            else:
                _set_block(old, filled, f"channels.{name}")
            mode = await _replace(service, document, private=private)
        except ConfigError as exc:
            raise invalid_channel(exc, name, block, fields) from None
        view = _view(service, document, name)
    log.info("channel %r %s", name, "created" if create else "changed")
    if private:
        extra = f" (the file's mode is now {mode:04o})"
        return attrs.evolve(view, warnings=tuple(w + extra for w in view.warnings))
    return view


# --- deleting --------------------------------------------------------------------------


def _drop_from(array: Any, name: str) -> bool:
    if not isinstance(array, list):
        return False
    found = [i for i, v in enumerate(array) if _plain(v) == name]
    for index in reversed(found):
        del array[index]
    return bool(found)


def _dependants(document: Mapping[str, Any], name: str) -> list[Problem]:
    """What names ``name`` alone, so that the channel cannot simply go."""
    routing = document.get("routing")
    if not isinstance(routing, Mapping):
        return []
    found = []
    if _plain(routing.get("fallback")) == name:
        found.append(
            Problem(
                "routing.fallback",
                "it is the fallback of every channel; in the file, name another or remove it first",
                name,
            )
        )
    fallbacks = routing.get("fallbacks")
    if isinstance(fallbacks, Mapping):
        for channel, fallback in fallbacks.items():
            if _plain(fallback) == name and channel != name:
                found.append(
                    Problem(
                        f"routing.fallbacks.{channel}",
                        f"it is channel {channel!r}'s fallback; in the file, name another first",
                        name,
                    )
                )
    if _plain(routing.get("user_channel")) == name:
        found.append(
            Problem(
                "routing.user_channel",
                "per-user copies go through it; name another channel in the file first",
                name,
            )
        )
    return found


def _unlink(document: tomlkit.TOMLDocument, name: str) -> list[str]:
    """Take ``name`` out of every list of channels and drop its own fallback; the places
    changed, as the file names them."""
    changed = []
    routing = document.get("routing")
    if isinstance(routing, Mapping):
        if _drop_from(routing.get("channels"), name):
            changed.append("routing.channels")
        events = routing.get("events")
        for event, rule in events.items() if isinstance(events, Mapping) else ():
            if isinstance(rule, Mapping) and _drop_from(rule.get("channels"), name):
                changed.append(f"routing.events.{event}.channels")
        fallbacks: Any = routing.get("fallbacks")
        if isinstance(fallbacks, MutableMapping) and name in fallbacks:
            del fallbacks[name]
            changed.append(f"routing.fallbacks.{name}")
    for section in ("jobs", "digest"):
        rules = document.get(section)
        for key, rule in rules.items() if isinstance(rules, Mapping) else ():
            if isinstance(rule, Mapping) and _drop_from(rule.get("channels"), name):
                changed.append(f"{section}.{key}.channels")
    return changed


async def delete_channel(service: Service, name: str) -> None:
    """Remove the channel and its mentions in ``[routing]``; 404 when there is none,
    409 when the result would not validate (say, it is another channel's fallback)."""
    async with service.lock:
        document = _read_document(service)
        channels = _channels_table(document)
        if name not in channels:
            raise not_found(f"channel {name!r}", "see GET /v1/channels for the channels configured")
        if found := _dependants(document, name):
            raise ApiError(409, f"channel {name!r} is still needed", found)
        del channels[name]
        changed = _unlink(document, name)
        try:
            await _replace(service, document, private=False)
        except ConfigError as exc:
            raise ApiError(
                409,
                f"without channel {name!r} the configuration file would not be valid",
                _problems(exc, name, {}, SecretFields(frozenset(), known=False)),
            ) from None
    log.info(
        "channel %r deleted%s", name, f"; taken out of {', '.join(changed)}" if changed else ""
    )


# --- testing ---------------------------------------------------------------------------


def _test_config(
    service: Service, document: Mapping[str, Any], name: str, block: Mapping[str, Any]
) -> Config:
    """A configuration of the file's rendering, dispatch and outbox with this one channel,
    validated as the file would be."""
    data: dict[str, Any] = {"channels": {name: dict(block)}}
    for section in ("rendering", "dispatch", "outbox"):
        if section in document:
            data[section] = _plain(document[section])
    return load_config(data, service.plugins)


async def test_channel(
    service: Service,
    block: Mapping[str, Any],
    *,
    name: str,
    send_message: bool = True,  # noqa: PT028 - not a test: the API's channel test
) -> Any:
    """Run the plugin's ``test`` on ``block`` (saved or not; a saved channel's secrets
    fill in those left out) and return the staged report (``TestReport``): resolve,
    connect, TLS, EHLO, AUTH, send, each with its detail and hint."""
    document = _plain(_read_document(service))
    saved = _channels_of(document).get(name) if name else None
    label = name or UNSAVED
    fields = _fields_of(service, block)
    try:
        filled = _fill_secrets(block, _same_type(saved, block), fields, f"channels.{label}")
        filled = {k: v for k, v in filled.items() if v is not None}
        config = _test_config(service, document, label, filled)
    except ConfigError as exc:
        raise invalid_channel(exc, label, block, fields) from None
    return await _run_test(service, config, label, send_message)


async def test_saved_channel(
    service: Service,
    name: str,
    *,
    send_message: bool = True,  # noqa: PT028 - not a test: the API's channel test
) -> TestReport:
    """Test the channel ``name`` as the file has it (404 when there is none); as
    ``dbnotify test NAME`` does."""
    document = _plain(_read_document(service))
    block = _channels_of(document).get(name)
    if not isinstance(block, Mapping):
        raise not_found(f"channel {name!r}", "see GET /v1/channels for the channels configured")
    fields = _fields_of(service, block)
    try:
        config = _test_config(service, document, name, block)
    except ConfigError as exc:
        raise invalid_channel(exc, name, block, fields) from None
    return await _run_test(service, config, name, send_message)


async def _run_test(service: Service, config: Config, name: str, send_message: bool) -> TestReport:
    deliverer = Deliverer(config, service.plugins, service.notifier.renderer)
    notification = to_notification(Event("test"))
    report = await deliverer.test(name, notification, send_message=send_message)
    log.info("channel %r tested: %s", name, "passed" if report.ok else "failed")
    return report


test_channel.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported
test_saved_channel.__test__ = False  # type: ignore[attr-defined]
