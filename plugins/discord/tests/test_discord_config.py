"""The Discord channel's configuration block."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from dbnotify import ConfigError, Secret, load_config
from dbnotify.schema import channel_schema
from dbnotify_discord.plugin import channel_info, validate_config
from dbnotify_discord.settings import DiscordConfig

URL = "https://discord.com/api/webhooks/123456789012345678/AbCdEfSeCrEtToKeN-xyz"


def errors(options: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(options)
    return [str(issue) for issue in caught.value.issues]


def test_defaults_and_repr() -> None:
    config = validate_config({"webhook_url": URL})
    assert isinstance(config, DiscordConfig)
    assert config.webhook_url == Secret(URL)
    assert (config.username, config.avatar_url) == (None, None)
    assert repr(config) == (
        "DiscordConfig(webhook_url='https://discord.com', username=None, avatar_url=None)"
    )


def test_channel_info() -> None:
    info = channel_info()
    assert (info.config_class, info.user_delivery) == (DiscordConfig, False)


def test_all_settings() -> None:
    config = validate_config(
        {"webhook_url": URL, "username": "DBackup", "avatar_url": "https://example.com/a.png"}
    )
    assert (config.username, config.avatar_url) == ("DBackup", "https://example.com/a.png")
    assert "SeCrEt" not in repr(config)


def test_unknown_key_suggests_the_right_one() -> None:
    assert errors({"webhook_url": URL, "user_name": "x"}) == [
        "user_name: unknown key; did you mean 'username'?"
    ]


def test_missing_url() -> None:
    assert errors({}) == [
        "webhook_url: required, not set (the webhook's URL, a secret: it carries the webhook's "
        'token); e.g. webhook_url = { env = "DISCORD_WEBHOOK_URL" }'
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "discord.com/api/webhooks/1/SECRET",
            "must start with https:// or http:// (got no scheme)",
        ),
        (
            "wss://discord.com/api/webhooks/1/SECRET",
            "must start with https:// or http:// (got wss://)",
        ),
        ("https://", "has no host name after https://"),
    ],
)
def test_bad_url(url: str, message: str) -> None:
    found = errors({"webhook_url": url})
    assert found == [f"webhook_url: {message}"]
    assert "SECRET" not in found[0]


def test_bad_avatar_url() -> None:
    assert errors({"webhook_url": URL, "avatar_url": "avatar.png"}) == [
        "avatar_url: must start with https:// or http:// (got no scheme)"
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty (leave it out to use the webhook's own name)"),
        ("x" * 81, "must be at most 80 characters (got 81)"),
        (
            "My Discord Bot",
            "Discord refuses webhook names that contain 'discord' (got 'My Discord Bot')",
        ),
        ("Clyde", "Discord refuses webhook names that contain 'clyde' (got 'Clyde')"),
        (5, "must be a string (got 5)"),
    ],
)
def test_bad_username(name: Any, message: str) -> None:
    assert errors({"webhook_url": URL, "username": name}) == [f"username: {message}"]


def test_url_from_a_file(tmp_path: Any) -> None:
    path = tmp_path / "discord-url"
    path.write_text(URL + "\n")
    config = validate_config({"webhook_url": {"file": str(path)}})
    assert config.webhook_url.reveal() == URL


def test_located_under_the_channel() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"channels": {"chat": {"type": "discord", "webhook_url": "x/SECRET"}}})
    assert [str(i) for i in caught.value.issues] == [
        "channels.chat.webhook_url: must start with https:// or http:// (got no scheme)"
    ]
    assert "SECRET" not in str(caught.value)


def test_schema_for_host_forms() -> None:
    schema = channel_schema("discord", channel_info())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["type", "webhook_url"]
    props = schema["properties"]
    assert [k for k, v in props.items() if v.get("x-secret")] == ["webhook_url"]
    assert all(p.get("description") for p in props.values())
    example = {
        "type": "discord",
        "webhook_url": {"env": "DISCORD_WEBHOOK_URL"},
        "username": "DBackup",
        "avatar_url": "https://example.com/a.png",
    }
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError, match="was unexpected"):
        jsonschema.validate({**example, "webhook_uri": "x"}, schema)
