"""Generic contract checks: what every channel plugin must pass, with no code from its author.

Run them against an installed plugin (``pip install 'dbnotify[testing]' your-plugin``)::

    pytest --pyargs dbnotify.testing.generic --channel-type ntfy

``--channel-type`` comes from dbnotify's pytest plugin (entry point ``pytest11``); it is
repeatable, and without it every installed channel type is checked. Each check runs once
per channel type:

- the entry point named TYPE exists in the group ``dbnotify.channels``, in one
  distribution that declares its dependency on ``dbnotify``;
- it loads and registers: no import error, every required hook, ``channel_info``
  returns a :class:`~dbnotify.hookspecs.ChannelInfo`;
- every hook implementation is a known hookspec, takes only the spec's arguments, none
  with a default value, is no wrapper, and ``send`` / ``test`` / ``shutdown`` are
  ``async def``;
- the config class is an attrs class whose every field has a description
  (``dbnotify.config.setting(description=...)``), so ``dbnotify schema`` can describe it;
- ``validate_config({})`` raises :class:`~dbnotify.config.ConfigError` whose issues all
  have a path, and names every required key;
- an unknown key is reported as ``unknown key`` at its own path;
- a value of the wrong type for any field is reported at that field's path;
- a secret given to a :class:`~dbnotify.secrets.Secret` field never shows in the error.

The behavioural checks (real deliveries to a local server) are the base class
:class:`dbnotify.testing.contract.ChannelContract`, which the plugin's own tests subclass.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Mapping
from importlib.metadata import entry_points, requires
from typing import Any

import attrs
import pytest

from dbnotify import hookspecs
from dbnotify.config.fields import file_key
from dbnotify.errors import ConfigError, ConfigIssue
from dbnotify.hookspecs import ChannelInfo
from dbnotify.plugins import ALLOW_ENV, GROUP, ChannelPlugin, PluginRegistry
from dbnotify.secrets import Secret
from dbnotify.testing.pytest_plugin import channel_types

UNKNOWN_KEY = "contract_unknown_key"
SECRET = "contract-Secret-Value-7f3a9c"  # noqa: S105 - a marker, not a credential
"""Given to every Secret field: it must never come back in an error message."""
WRONG_VALUES: tuple[Any, ...] = (
    {"contract-wrong-type": [1.5]},
    [{"contract-wrong-type": 1}],
    1.5,
    True,
    "contract-wrong-type",
)
"""Values tried, in turn, on each field until one is refused: the first fits no scalar,
list or secret; the others catch tables and lists."""
ASYNC_HOOKS = ("send", "test", "shutdown")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "channel_type" in metafunc.fixturenames:
        types = channel_types(metafunc.config) or sorted(
            {ep.name for ep in entry_points(group=GROUP)}
        )
        metafunc.parametrize("channel_type", types, ids=types)


@pytest.fixture
def registry(channel_type: str) -> PluginRegistry:
    """A registry that loads this channel type alone (other broken plugins do not matter)."""
    return PluginRegistry(environ={ALLOW_ENV: channel_type})


@pytest.fixture
def plugin(registry: PluginRegistry, channel_type: str) -> ChannelPlugin:
    found = registry.get(channel_type)
    if found is None:
        pytest.fail(registry.explain_missing(channel_type), pytrace=False)
    return found


def _refusal(plugin: ChannelPlugin, options: Mapping[str, Any]) -> tuple[ConfigIssue, ...]:
    """The issues of ``validate_config(options)``; () when it was accepted."""
    try:
        plugin.validate_config(options)
    except ConfigError as exc:
        return exc.issues
    return ()


def _fields(plugin: ChannelPlugin) -> list[attrs.Attribute[Any]]:
    cls = plugin.info.config_class
    if not attrs.has(cls):
        pytest.fail(f"config_class {cls!r} is not an attrs class", pytrace=False)
    attrs.resolve_types(cls)
    return [a for a in attrs.fields(cls) if a.init]


def _at(path: str, key: str) -> bool:
    return path == key or path.startswith((f"{key}.", f"{key}["))


def _mentions_secret(annotation: Any) -> bool:
    if annotation is Secret:
        return True
    return any(_mentions_secret(arg) for arg in typing.get_args(annotation))


def _is_sequence(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (tuple, list, set, frozenset):
        return True
    return any(_is_sequence(arg) for arg in typing.get_args(annotation))


# --- the entry point ----------------------------------------------------------------


def test_entry_point_is_declared(channel_type: str) -> None:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == channel_type]
    assert found, (
        f"no entry point named {channel_type!r} in the group {GROUP!r}; declare it in the "
        f'plugin\'s pyproject.toml: [project.entry-points."{GROUP}"] '
        f'{channel_type} = "your_package.plugin"'
    )
    dists = sorted({ep.dist.name if ep.dist else "(unknown)" for ep in found})
    assert len(dists) == 1, f"channel type {channel_type!r} is claimed by {', '.join(dists)}"
    wanted = [
        r
        for r in requires(dists[0]) or []
        if re.match(r"dbnotify\b(?![-_.])", r, re.IGNORECASE) and "extra ==" not in r
    ]
    assert wanted or dists[0] == "dbnotify", (
        f'{dists[0]} does not declare its dependency on dbnotify: dependencies = ["dbnotify>=0.1"]'
    )


def test_plugin_loads_and_registers(registry: PluginRegistry, channel_type: str) -> None:
    found = registry.get(channel_type)
    failures = [f.error for f in registry.failures if f.name == channel_type]
    assert not failures, f"channel type {channel_type!r} failed to load: " + "; ".join(failures)
    assert found is not None, registry.explain_missing(channel_type)
    assert found.type == channel_type
    assert isinstance(found.info, ChannelInfo)
    description = found.info.description
    assert isinstance(description, str), "ChannelInfo.description must be a string"
    assert description.strip(), "ChannelInfo.description is empty: `dbnotify plugins` shows it"
    assert "\n" not in description.strip(), "ChannelInfo.description must be one line"


# --- the hooks ----------------------------------------------------------------------


def test_hooks_match_the_specs(plugin: ChannelPlugin) -> None:
    impls = plugin._impls
    known = (*hookspecs.HOOK_NAMES, *hookspecs.OPTIONAL_HOOKS)
    missing = [name for name in hookspecs.HOOK_NAMES if name not in impls]
    assert not missing, f"missing hook implementations: {', '.join(missing)}"
    problems: list[str] = []
    for name, impl in sorted(impls.items()):
        if name not in known:
            problems.append(f"{name}: not a dbnotify hook (known: {', '.join(known)})")
            continue
        if impl.hookwrapper or impl.wrapper:
            problems.append(f"{name}: hook wrappers are not supported")
        spec = inspect.signature(getattr(hookspecs, name)).parameters
        for parameter in inspect.signature(impl.function).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if parameter.name not in spec:
                problems.append(
                    f"{name}: parameter {parameter.name!r} is not an argument of the spec "
                    f"({', '.join(spec) or 'none'})"
                )
            elif parameter.default is not parameter.empty:
                problems.append(
                    f"{name}: parameter {parameter.name!r} has a default value; pluggy "
                    "would never pass it"
                )
        if name in ASYNC_HOOKS and not inspect.iscoroutinefunction(impl.function):
            problems.append(f"{name}: write it `async def` (the core awaits what it returns)")
    listed = "\n  ".join(problems)
    assert not problems, f"hook implementations do not match the specs:\n  {listed}"


# --- the configuration --------------------------------------------------------------


def test_config_class_describes_every_field(plugin: ChannelPlugin) -> None:
    undescribed = [
        file_key(a)
        for a in _fields(plugin)
        if not isinstance(a.metadata.get("description"), str)
        or not a.metadata["description"].strip()
    ]
    assert not undescribed, (
        f"fields without a description: {', '.join(undescribed)}; declare them with "
        "dbnotify.config.setting(description=...) so that `dbnotify schema` and the "
        "'required, not set' messages can say what they are"
    )


def test_empty_block_is_refused_with_located_issues(plugin: ChannelPlugin) -> None:
    required = [file_key(a) for a in _fields(plugin) if a.default is attrs.NOTHING]
    issues = _refusal(plugin, {})
    if not issues:
        assert not required, (
            f"validate_config({{}}) was accepted, yet {', '.join(required)} have no default"
        )
        return
    unlocated = [i.message for i in issues if not i.path]
    assert not unlocated, f"issues without a path: {unlocated}"
    unreadable = [i for i in issues if not i.message.strip() or "Traceback" in i.message]
    assert not unreadable, f"issues without a readable message: {unreadable}"
    paths = {i.path for i in issues}
    unreported = [key for key in required if not any(_at(p, key) for p in paths)]
    assert not unreported, (
        f"required keys not reported as missing: {', '.join(unreported)} "
        f"(got: {'; '.join(map(str, issues))})"
    )


def test_unknown_key_is_reported(plugin: ChannelPlugin) -> None:
    issues = _refusal(plugin, {UNKNOWN_KEY: "x"})
    at_key = [i for i in issues if i.path == UNKNOWN_KEY]
    assert at_key, (
        f"an unknown key was not reported at its path {UNKNOWN_KEY!r} "
        f"(got: {'; '.join(map(str, issues)) or 'accepted'}); use dbnotify.config.structure"
    )
    assert all(i.message.startswith("unknown key") for i in at_key), at_key


def test_wrong_types_are_reported_at_the_field(plugin: ChannelPlugin) -> None:
    accepted: list[str] = []
    for attribute in _fields(plugin):
        key = file_key(attribute)
        if not any(
            any(_at(i.path, key) for i in _refusal(plugin, {key: value})) for value in WRONG_VALUES
        ):
            accepted.append(f"{key} ({attribute.type})")
    assert not accepted, (
        "no issue at these fields' paths for any value of a wrong type "
        f"({', '.join(map(repr, WRONG_VALUES))}): {', '.join(accepted)}; give each field a "
        "precise type and let dbnotify.config.structure check it"
    )


def test_secrets_are_not_echoed_in_errors(plugin: ChannelPlugin) -> None:
    secret_fields = [a for a in _fields(plugin) if _mentions_secret(a.type)]
    if not secret_fields:
        pytest.skip("the config class has no Secret fields")
    for attribute in secret_fields:
        key = file_key(attribute)
        value: Any = [SECRET] if _is_sequence(attribute.type) else SECRET
        issues = _refusal(plugin, {key: value, UNKNOWN_KEY: SECRET})
        assert issues, "a block with an unknown key was accepted"
        text = str(ConfigError(issues))
        assert SECRET not in text, f"the value of secret field {key!r} shows in: {text}"
