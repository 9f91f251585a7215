"""The Slack channel's configuration block."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from dbnotify import ConfigError, Secret, load_config
from dbnotify.schema import channel_schema
from dbnotify_slack.plugin import channel_info, validate_config
from dbnotify_slack.settings import SlackConfig

URL = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXSECRETXXXXXXXXXX"


def errors(options: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(options)
    return [str(issue) for issue in caught.value.issues]


def test_defaults_and_repr() -> None:
    config = validate_config({"webhook_url": URL})
    assert isinstance(config, SlackConfig)
    assert config.webhook_url == Secret(URL)
    assert (config.channel, config.username, config.icon_emoji) == (None, None, None)
    assert repr(config) == (
        "SlackConfig(webhook_url='https://hooks.slack.com', channel=None, username=None, "
        "icon_emoji=None)"
    )


def test_channel_info() -> None:
    info = channel_info()
    assert (info.config_class, info.user_delivery) == (SlackConfig, False)


def test_all_settings() -> None:
    config = validate_config(
        {
            "webhook_url": URL,
            "channel": "#backups",
            "username": "DBackup",
            "icon_emoji": ":floppy_disk:",
        }
    )
    assert (config.channel, config.username, config.icon_emoji) == (
        "#backups",
        "DBackup",
        ":floppy_disk:",
    )
    assert "SECRET" not in repr(config)


def test_unknown_key_suggests_the_right_one() -> None:
    assert errors({"webhook_url": URL, "icon_emoj": ":x:"}) == [
        "icon_emoj: unknown key; did you mean 'icon_emoji'?"
    ]


def test_bad_url_scheme() -> None:
    found = errors({"webhook_url": "hooks.slack.com/services/T0/B0/SECRET"})
    assert found == ["webhook_url: must start with https:// or http:// (got no scheme)"]


@pytest.mark.parametrize(
    ("emoji", "message"),
    [
        (
            "floppy_disk",
            "must be an emoji code between colons, such as ':floppy_disk:' (got "
            "'floppy_disk'); did you mean ':floppy_disk:'?",
        ),
        (
            ":Floppy Disk:",
            "must be an emoji code between colons, such as ':floppy_disk:' (got ':Floppy Disk:')",
        ),
    ],
)
def test_bad_icon_emoji(emoji: str, message: str) -> None:
    assert errors({"webhook_url": URL, "icon_emoji": emoji}) == [f"icon_emoji: {message}"]


def test_skin_tone_emoji() -> None:
    config = validate_config({"webhook_url": URL, "icon_emoji": ":+1::skin-tone-3:"})
    assert config.icon_emoji == ":+1::skin-tone-3:"


def test_bad_channel_and_username() -> None:
    assert errors({"webhook_url": URL, "channel": "#my backups", "username": " "}) == [
        "channel: must be a channel such as '#backups' or a channel ID such as 'C0123456789' "
        "(no spaces, at most 80 characters; got '#my backups')",
        "username: must not be empty (leave it out to use the webhook's own name)",
    ]


def test_located_under_the_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_URL_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(
            {"channels": {"team": {"type": "slack", "webhook_url": {"env": "SLACK_URL_NOT_SET"}}}}
        )
    assert [str(i) for i in caught.value.issues] == [
        "channels.team.webhook_url: environment variable SLACK_URL_NOT_SET is not set; export "
        'it, or use { file = "/path" } or a literal value'
    ]


def test_schema_for_host_forms() -> None:
    schema = channel_schema("slack", channel_info())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["type", "webhook_url"]
    props = schema["properties"]
    assert [k for k, v in props.items() if v.get("x-secret")] == ["webhook_url"]
    assert all(p.get("description") for p in props.values())
    example = {
        "type": "slack",
        "webhook_url": {"env": "SLACK_WEBHOOK_URL"},
        "channel": "#backups",
        "username": "DBackup",
        "icon_emoji": ":floppy_disk:",
    }
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError, match="was unexpected"):
        jsonschema.validate({**example, "webhook_uri": "x"}, schema)
