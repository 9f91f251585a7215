"""The Gotify channel's configuration: what is accepted, and every error word for word."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbnotify import ConfigError, Secret, load_config
from dbnotify.plugins import default_registry
from dbnotify_gotify.settings import GotifyConfig

TOKEN = "AgotifyAppTokenXyz"
BASE: dict[str, Any] = {"server_url": "https://gotify.example.com", "app_token": TOKEN}


def validate(**options: Any) -> GotifyConfig:
    plugin = default_registry().get("gotify")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({**BASE, **options})
    assert isinstance(config, GotifyConfig)
    return config


def errors(**options: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    return [str(issue) for issue in info.value.issues]


def test_defaults() -> None:
    config = validate()
    assert config.server_url == "https://gotify.example.com"
    assert config.app_token == Secret(TOKEN)
    assert config.priority == 5
    assert config.failure_priority is None
    assert config.effective_failure_priority == 8
    assert config.timeout == 15.0


def test_plugin_is_listed_without_user_delivery() -> None:
    plugin = default_registry().get("gotify")
    assert plugin is not None
    assert plugin.info.config_class is GotifyConfig
    assert plugin.info.user_delivery is False
    assert "Gotify" in plugin.info.description


def test_trailing_slashes_are_dropped_and_a_path_prefix_is_kept() -> None:
    assert validate(server_url="https://example.com/gotify/").server_url == (
        "https://example.com/gotify"
    )
    assert validate(server_url="http://10.0.0.5:8080").server_url == "http://10.0.0.5:8080"


def test_failure_priority_follows_a_higher_priority_unless_set() -> None:
    assert validate(priority=9).effective_failure_priority == 9
    assert validate(priority=2, failure_priority=10).effective_failure_priority == 10
    assert validate(priority=4, failure_priority=4).effective_failure_priority == 4


def test_token_from_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOTIFY_TOKEN", "from-env")
    assert validate(app_token={"env": "GOTIFY_TOKEN"}).app_token.reveal() == "from-env"
    path = tmp_path / "token"
    path.write_text("from-file\n")
    config = validate(app_token={"file": str(path)})
    assert config.app_token.reveal() == "from-file"
    assert config.app_token.source == f"file {path}"


def test_repr_never_shows_the_token() -> None:
    config = validate()
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)
    assert "https://gotify.example.com" in repr(config)


def test_unknown_key_suggests_the_right_one() -> None:
    assert errors(app_tokn="x") == ["app_tokn: unknown key; did you mean 'app_token'?"]


def test_required_keys() -> None:
    plugin = default_registry().get("gotify")
    assert plugin is not None
    with pytest.raises(ConfigError) as info:
        plugin.validate_config({})
    assert [str(i) for i in info.value.issues] == [
        "server_url: required, not set (the Gotify server's URL, http:// or https://); "
        'e.g. server_url = "https://gotify.example.com"',
        "app_token: required, not set (an application token from Gotify's Apps page, sent as "
        'X-Gotify-Key); e.g. app_token = { env = "GOTIFY_APP_TOKEN" }',
    ]


@pytest.mark.parametrize(
    ("options", "line"),
    [
        ({"priority": 11}, "priority: must be between 0 and 10 (got 11)"),
        ({"priority": -1}, "priority: must be between 0 and 10 (got -1)"),
        ({"failure_priority": 12}, "failure_priority: must be between 0 and 10 (got 12)"),
        ({"priority": "high"}, "priority: must be an integer (got 'high')"),
        ({"priority": True}, "priority: must be an integer (got True)"),
        (
            {"priority": 6, "failure_priority": 3},
            "failure_priority: must be at least priority (6): failures are raised, never "
            "lowered (got 3)",
        ),
        ({"timeout": 0}, "timeout: must be greater than 0 (got 0.0)"),
    ],
)
def test_bad_numbers(options: dict[str, Any], line: str) -> None:
    assert errors(**options) == [line]


@pytest.mark.parametrize(
    ("url", "line"),
    [
        (
            "ftp://gotify.example.com",
            'server_url: must be an http:// or https:// URL, e.g. "https://gotify.example.com" '
            "(got 'ftp://gotify.example.com')",
        ),
        (
            "gotify.example.com",
            'server_url: must be an http:// or https:// URL, e.g. "https://gotify.example.com" '
            "(got 'gotify.example.com')",
        ),
        (
            "https://",
            'server_url: must be an http:// or https:// URL, e.g. "https://gotify.example.com" '
            "(got 'https://')",
        ),
        (
            "https://gotify.example.com:port",
            'server_url: must be an http:// or https:// URL, e.g. "https://gotify.example.com" '
            "(got 'https://gotify.example.com:port')",
        ),
    ],
)
def test_bad_url_scheme(url: str, line: str) -> None:
    assert errors(server_url=url) == [line]


def test_a_token_in_the_url_is_refused_and_never_echoed() -> None:
    (line,) = errors(server_url="https://gotify.example.com/message?token=SeCrEt")
    assert line == (
        "server_url: must not have a query (?...) or fragment (#...); the token goes in "
        "app_token, never in the URL"
    )
    (line,) = errors(server_url="https://user:SeCrEt@gotify.example.com")
    assert line == "server_url: must not hold a user or password; the token goes in app_token"


def test_empty_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOTIFY_TOKEN", "")
    assert errors(app_token={"env": "GOTIFY_TOKEN"}) == ["app_token: is empty (env GOTIFY_TOKEN)"]


def test_secret_of_the_wrong_shape() -> None:
    assert errors(app_token=1234) == [
        'app_token: must be a string, { env = "NAME" } or { file = "/path" } (got int)'
    ]


def test_errors_are_located_under_the_channel_in_a_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "channels": {"push": {"type": "gotify", **BASE, "priority": 42, "titel": "x"}},
                "routing": {"channels": ["push"]},
            }
        )
    assert [str(i) for i in info.value.issues] == [
        "channels.push.titel: unknown key (known: server_url, app_token, priority, "
        "failure_priority, timeout)",
        "channels.push.priority: must be between 0 and 10 (got 42)",
    ]


@pytest.mark.parametrize("token", ["tok\u00e9n-marker", "\u201ctoken-marker\u201d", "tok\nen"])
def test_a_token_that_is_not_printable_ascii_is_refused_unseen(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    """A header carries ASCII only: such a token would fail every send."""
    monkeypatch.setenv("GOTIFY_TOKEN", token)
    assert errors(app_token={"env": "GOTIFY_TOKEN"}) == [
        "app_token: must be printable ASCII: it is sent in an HTTP header, which cannot carry "
        "other characters (a pasted quote, accent or line break?) (env GOTIFY_TOKEN)"
    ]
    assert errors(app_token=token) == [
        "app_token: must be printable ASCII: it is sent in an HTTP header, which cannot carry "
        "other characters (a pasted quote, accent or line break?) (literal)"
    ]
