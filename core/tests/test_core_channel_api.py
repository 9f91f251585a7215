"""``dbnotify.channel`` is the plugin authors' API: pinned here, name by name.

A name added to or removed from it is a change for every third-party plugin, so it is
made on purpose: here, in docs/plugins.md and in the changelog (httpx's
``test_exported_members`` pattern).
"""

from __future__ import annotations

import attrs

import dbnotify.channel

EXPORTED = [
    "MASK",
    "ChannelInfo",
    "ConfigError",
    "ConfigIssue",
    "Duration",
    "FailureKind",
    "Field",
    "InvalidField",
    "Notification",
    "RecipientResult",
    "Renderer",
    "Secret",
    "Severity",
    "Status",
    "TestReport",
    "TestStage",
    "describe_value",
    "did_you_mean",
    "hookimpl",
    "in_range",
    "make_converter",
    "non_empty",
    "one_line",
    "positive",
    "setting",
    "structure",
]
"""Sorted as ruff sorts ``__all__``: constants, classes, then functions."""


def _ruff_order(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_exactly_the_pinned_list() -> None:
    assert dbnotify.channel.__all__ == EXPORTED
    assert sorted(EXPORTED, key=_ruff_order) == EXPORTED


def test_every_exported_name_resolves_and_none_is_private() -> None:
    for name in EXPORTED:
        assert not name.startswith("_"), name
        assert getattr(dbnotify.channel, name) is not None, name


def test_the_module_holds_nothing_public_but_its_exports() -> None:
    # pytest rewrites dbnotify's modules (a pytest11 plugin's distribution): "@py_builtins"
    names = [name for name in vars(dbnotify.channel) if name.isidentifier()]
    public = {name for name in names if not name.startswith("_")}
    assert public == set(EXPORTED)


def test_a_field_schema_hint_replaces_what_its_type_would_give() -> None:
    from dbnotify.schema import object_schema

    hint = {"type": "string", "format": "email"}

    @attrs.frozen
    class Settings:
        sender: str = dbnotify.channel.setting(description="who sends", schema=hint)
        copy: str | None = dbnotify.channel.setting(
            default="a@example.com", description="who gets a copy", schema=hint
        )

    properties = object_schema(Settings)["properties"]
    assert properties == {
        "sender": {"type": "string", "format": "email", "description": "who sends"},
        "copy": {
            "type": "string",
            "format": "email",
            "description": "who gets a copy",
            "default": "a@example.com",
        },
    }
    assert hint == {"type": "string", "format": "email"}  # a copy was extended, not the hint
