"""The ntfy channel's configuration: what is accepted, and every error word for word."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import ConfigError, load_config
from dbnotify.plugins import default_registry
from dbnotify_ntfy.settings import NtfyConfig

TOKEN = "tk_AgHUrLbS2dw4N9mMbQz4vGhEb5xKp"


def validate(**options: Any) -> NtfyConfig:
    plugin = default_registry().get("ntfy")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({"topic": "dbackup-alerts", **options})
    assert isinstance(config, NtfyConfig)
    return config


def errors(**options: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    return [str(issue) for issue in info.value.issues]


def test_defaults() -> None:
    config = validate()
    assert config.server_url == "https://ntfy.sh"
    assert config.topic == "dbackup-alerts"
    assert config.access_token is None
    assert config.priority == 3
    assert config.effective_failure_priority == 5
    assert config.timeout == 15.0


def test_plugin_info() -> None:
    plugin = default_registry().get("ntfy")
    assert plugin is not None
    assert plugin.info.config_class is NtfyConfig
    assert plugin.info.user_delivery is False


def test_self_hosted_server_and_token() -> None:
    config = validate(
        server_url="https://ntfy.example.com/", access_token=TOKEN, priority=2, failure_priority=4
    )
    assert config.server_url == "https://ntfy.example.com"
    assert config.access_token is not None
    assert config.access_token.reveal() == TOKEN
    assert config.effective_failure_priority == 4
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)


@pytest.mark.parametrize("topic", ["a", "A-b_c-9", "x" * 64])
def test_good_topics(topic: str) -> None:
    assert validate(topic=topic).topic == topic


@pytest.mark.parametrize(
    ("topic", "shown"),
    [
        ("my topic", "'my topic'"),
        ("", "''"),
        ("alerts/backup", "'alerts/backup'"),
        ("ümlaut", "'ümlaut'"),
    ],
)
def test_bad_topics(topic: str, shown: str) -> None:
    assert errors(topic=topic) == [
        f"topic: must be 1 to 64 letters, digits, '-' or '_', as ntfy allows (got {shown})"
    ]


def test_a_long_topic() -> None:
    assert errors(topic="x" * 65) == [
        "topic: must be at most 64 characters, as ntfy allows (got 65)"
    ]


def test_topic_is_required() -> None:
    plugin = default_registry().get("ntfy")
    assert plugin is not None
    with pytest.raises(ConfigError) as info:
        plugin.validate_config({})
    assert [str(i) for i in info.value.issues] == [
        'topic: required, not set (the topic to publish to); e.g. topic = "dbackup-alerts"'
    ]


def test_unknown_key_suggests_the_right_one() -> None:
    assert errors(acces_token="x") == ["acces_token: unknown key; did you mean 'access_token'?"]
    assert errors(topik="x") == ["topik: unknown key; did you mean 'topic'?"]


@pytest.mark.parametrize(
    ("options", "line"),
    [
        ({"priority": 0}, "priority: must be between 1 and 5 (got 0)"),
        ({"priority": 6}, "priority: must be between 1 and 5 (got 6)"),
        ({"failure_priority": 9}, "failure_priority: must be between 1 and 5 (got 9)"),
        ({"priority": "urgent"}, "priority: must be an integer (got 'urgent')"),
        (
            {"priority": 4, "failure_priority": 2},
            "failure_priority: must be at least priority (4): failures are raised, never "
            "lowered (got 2)",
        ),
    ],
)
def test_bad_priorities(options: dict[str, Any], line: str) -> None:
    assert errors(**options) == [line]


@pytest.mark.parametrize(
    ("url", "line"),
    [
        (
            "ntfy.sh",
            'server_url: must be an http:// or https:// URL, e.g. "https://ntfy.example.com" '
            "(got 'ntfy.sh')",
        ),
        (
            "wss://ntfy.sh",
            'server_url: must be an http:// or https:// URL, e.g. "https://ntfy.example.com" '
            "(got 'wss://ntfy.sh')",
        ),
        (
            "https://ntfy.sh/mytopic?auth=SeCrEt",
            "server_url: must not have a query (?...) or fragment (#...); the topic goes in "
            "topic, the token in access_token",
        ),
        (
            "https://me:SeCrEt@ntfy.sh",
            "server_url: must not hold a user or password; the token goes in access_token",
        ),
    ],
)
def test_bad_urls(url: str, line: str) -> None:
    assert errors(server_url=url) == [line]


def test_empty_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NTFY_TOKEN", "  ")
    assert errors(access_token={"env": "NTFY_TOKEN"}) == ["access_token: is empty (env NTFY_TOKEN)"]


def test_every_problem_at_once_under_the_channel() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "channels": {
                    "phone": {
                        "type": "ntfy",
                        "topik": "x",
                        "access_token": 5,
                        "priority": 9,
                    }
                },
                "routing": {"channels": ["phone"]},
            }
        )
    assert str(info.value) == (
        "4 configuration errors:\n"
        "  channels.phone.topik: unknown key; did you mean 'topic'?\n"
        '  channels.phone.topic: required, not set (the topic to publish to); e.g. topic = "dbackup-alerts"\n'  # noqa: E501
        '  channels.phone.access_token: must be a string, { env = "NAME" } or { file = "/path" } (got int)\n'  # noqa: E501
        "  channels.phone.priority: must be between 1 and 5 (got 9)"
    )


@pytest.mark.parametrize("token", ["tok\u00e9n-marker", "\u201ctoken-marker\u201d", "tok\nen"])
def test_a_token_that_is_not_printable_ascii_is_refused_unseen(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    """A header carries ASCII only: such a token would fail every send."""
    monkeypatch.setenv("NTFY_TOKEN", token)
    assert errors(access_token={"env": "NTFY_TOKEN"}) == [
        "access_token: must be printable ASCII: it is sent in an HTTP header, which cannot carry "
        "other characters (a pasted quote, accent or line break?) (env NTFY_TOKEN)"
    ]
    assert errors(access_token=token) == [
        "access_token: must be printable ASCII: it is sent in an HTTP header, which cannot carry "
        "other characters (a pasted quote, accent or line break?) (literal)"
    ]
