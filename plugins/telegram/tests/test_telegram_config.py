"""The Telegram channel's configuration: what is accepted, and every error word for word."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import ConfigError, load_config
from dbnotify.plugins import default_registry
from dbnotify_telegram.settings import ParseMode, TelegramConfig

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def validate(**options: Any) -> TelegramConfig:
    plugin = default_registry().get("telegram")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({"bot_token": TOKEN, "chat_id": 42, **options})
    assert isinstance(config, TelegramConfig)
    return config


def errors(**options: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    return [str(issue) for issue in info.value.issues]


def test_defaults() -> None:
    config = validate()
    assert config.bot_token.reveal() == TOKEN
    assert config.chat == 42
    assert config.parse_mode is ParseMode.HTML
    assert config.disable_notification is False
    assert config.api_url == "https://api.telegram.org"
    assert config.timeout == 15.0


def test_plugin_info() -> None:
    plugin = default_registry().get("telegram")
    assert plugin is not None
    assert plugin.info.config_class is TelegramConfig
    assert plugin.info.user_delivery is False


@pytest.mark.parametrize(
    ("chat_id", "chat"),
    [
        (-1001234567890, -1001234567890),
        ("-1001234567890", -1001234567890),
        (" 987654321 ", 987654321),
        ("@dbackup_alerts", "@dbackup_alerts"),
    ],
)
def test_chat_ids(chat_id: Any, chat: int | str) -> None:
    assert validate(chat_id=chat_id).chat == chat


@pytest.mark.parametrize(
    ("chat_id", "line"),
    [
        (
            "dbackup_alerts",
            "chat_id: must be a chat's numeric id (e.g. -1001234567890) or a public channel's "
            "@username (got 'dbackup_alerts'); did you mean '@dbackup_alerts'?",
        ),
        (
            "https://t.me/dbackup_alerts",
            "chat_id: must be a chat's numeric id (e.g. -1001234567890) or a public channel's "
            "@username (got a link); did you mean '@dbackup_alerts'?",
        ),
        (
            "@ab",
            "chat_id: must be a chat's numeric id (e.g. -1001234567890) or a public channel's "
            "@username (got '@ab')",
        ),
        (
            0,
            "chat_id: must be a chat's numeric id (e.g. -1001234567890) or a public channel's "
            "@username (got 0)",
        ),
        (
            True,
            "chat_id: must be a chat's numeric id (e.g. -1001234567890) or a public channel's "
            "@username (got True)",
        ),
        (
            1.5,
            "chat_id: must be a chat's numeric id (e.g. -1001234567890) or a public channel's "
            "@username (got 1.5)",
        ),
    ],
)
def test_bad_chat_ids(chat_id: Any, line: str) -> None:
    assert errors(chat_id=chat_id) == [line]


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("HTML", ParseMode.HTML),
        ("html", ParseMode.HTML),
        ("MarkdownV2", ParseMode.MARKDOWN_V2),
        ("markdownv2", ParseMode.MARKDOWN_V2),
        ("none", ParseMode.NONE),
        ("None", ParseMode.NONE),
    ],
)
def test_parse_modes(value: str, mode: ParseMode) -> None:
    assert validate(parse_mode=value).parse_mode is mode


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (
            "Markdown",
            "parse_mode: must be one of none, HTML, MarkdownV2 (got 'Markdown'); Telegram's "
            "legacy Markdown is not supported: use 'MarkdownV2' (or 'HTML')",
        ),
        ("text", "parse_mode: must be one of none, HTML, MarkdownV2 (got 'text')"),
        (1, "parse_mode: must be one of none, HTML, MarkdownV2 (got 1)"),
    ],
)
def test_bad_parse_modes(value: Any, line: str) -> None:
    assert errors(parse_mode=value) == [line]


@pytest.mark.parametrize(
    ("token", "line"),
    [
        (
            "not-a-token",
            "bot_token: does not look like a bot token: digits, a colon, then at least 20 "
            "letters, digits, '-' or '_', as @BotFather gives it (literal; the value is not "
            "shown)",
        ),
        (
            "bot" + TOKEN,
            "bot_token: starts with 'bot': give the token alone, without that prefix",
        ),
    ],
)
def test_bad_tokens_are_never_echoed(token: str, line: str) -> None:
    (found,) = errors(bot_token=token)
    assert found == line
    assert token not in found


def test_a_token_from_env_is_named_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_TOKEN", "12345:short")
    (found,) = errors(bot_token={"env": "TG_TOKEN"})
    assert found.endswith("(env TG_TOKEN; the value is not shown)")
    assert "short" not in found


def test_repr_never_shows_the_token() -> None:
    config = validate()
    assert TOKEN not in repr(config)
    assert "AAHdqTcv" not in str(config)


@pytest.mark.parametrize(
    ("url", "line"),
    [
        (
            "api.telegram.org",
            'api_url: must be an http:// or https:// URL, e.g. "https://api.telegram.org" '
            "(got 'api.telegram.org')",
        ),
        (
            f"https://api.telegram.org/bot{TOKEN}",
            "api_url: must be the server alone (e.g. https://api.telegram.org): the token goes "
            "in bot_token, never in the URL",
        ),
        (
            f"api.telegram.org/bot{TOKEN}",
            'api_url: must be an http:// or https:// URL, e.g. "https://api.telegram.org"',
        ),
        (
            f"ftp://api.telegram.org/bot{TOKEN}/",
            'api_url: must be an http:// or https:// URL, e.g. "https://api.telegram.org"',
        ),
        (
            "https://api.telegram.org/?token=x",
            "api_url: must not have a query (?...) or fragment (#...)",
        ),
    ],
)
def test_bad_api_urls(url: str, line: str) -> None:
    assert errors(api_url=url) == [line]


def test_self_hosted_api_url() -> None:
    assert validate(api_url="http://127.0.0.1:8081/").api_url == "http://127.0.0.1:8081"


def test_unknown_key_and_bad_bool() -> None:
    assert errors(chatid=5, disable_notification="yes") == [
        "chatid: unknown key; did you mean 'chat_id'?",
        "disable_notification: must be true or false (got 'yes')",
    ]


def test_required_keys_under_the_channel() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"channels": {"tg": {"type": "telegram"}}, "routing": {"channels": ["tg"]}})
    assert [str(i) for i in info.value.issues] == [
        "channels.tg.bot_token: required, not set (the bot's token, from @BotFather); "
        'e.g. bot_token = { env = "TELEGRAM_BOT_TOKEN" }',
        "channels.tg.chat_id: required, not set (the chat's numeric id, or a public "
        "channel's @username); e.g. chat_id = -1001234567890",
    ]
