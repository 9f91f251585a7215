"""The Twilio SMS channel's configuration: what is accepted, and every error word for word."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import ConfigError, load_config
from dbnotify.plugins import default_registry
from dbnotify_twilio_sms.settings import TwilioSmsConfig

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f00dcafe" * 4
BASE: dict[str, Any] = {
    "account_sid": SID,
    "auth_token": TOKEN,
    "from": "+15017122661",
    "to": ["+4915112345678"],
}
E164 = (
    "is not an E.164 number: write + and the country code, then the number without its "
    "leading 0, e.g. +4915112345678"
)


def validate(**options: Any) -> TwilioSmsConfig:
    plugin = default_registry().get("twilio-sms")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({**BASE, **options})
    assert isinstance(config, TwilioSmsConfig)
    return config


def errors(**options: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    return [str(issue) for issue in info.value.issues]


def test_defaults() -> None:
    config = validate()
    assert config.account_sid == SID
    assert config.auth_token.reveal() == TOKEN
    assert config.from_ == "+15017122661"
    assert config.uses_service is False
    assert config.to == ("+4915112345678",)
    assert config.api_url == "https://api.twilio.com"
    assert config.timeout == 15.0


def test_plugin_info() -> None:
    plugin = default_registry().get("twilio-sms")
    assert plugin is not None
    assert plugin.info.config_class is TwilioSmsConfig
    assert plugin.info.user_delivery is False


def test_to_as_list_or_string_the_same_numbers_normalised() -> None:
    as_list = validate(to=["+49 151 1234-5678", "+1 (415) 555.0100"])
    as_text = validate(to="+4915112345678, +14155550100")
    assert as_list.to == ("+4915112345678", "+14155550100")
    assert as_text.to == as_list.to
    assert validate(to="+4915112345678; +14155550100").to == as_list.to


def test_a_number_given_twice_gets_one_message() -> None:
    assert validate(to=["+4915112345678", "+49 151 12345678"]).to == ("+4915112345678",)


def test_from_a_messaging_service() -> None:
    config = validate(**{"from": "MG" + "a" * 32})
    assert config.from_ == "MG" + "a" * 32
    assert config.uses_service is True


def test_repr_never_shows_the_token() -> None:
    config = validate()
    assert TOKEN not in repr(config)
    assert SID in repr(config)


@pytest.mark.parametrize(
    ("to", "lines"),
    [
        (["+4915112345678", "0151 12345678"], [f"to[1]: '0151 12345678' {E164}"]),
        (
            "00491511234567, +1 555, +14155550100",
            [
                f"to[0]: '00491511234567' {E164}; did you mean '+491511234567'?",
                f"to[1]: '+1 555' {E164}",
            ],
        ),
        ([], ['to: must name at least one number, e.g. "+4915112345678"']),
        ("", ['to: must name at least one number, e.g. "+4915112345678"']),
        ([4915112345678], ["to[0]: must be a phone number as a string (got 4915112345678)"]),
        (
            4915112345678,
            [
                "to: must be a list of numbers, or one string separated by commas "
                "(got 4915112345678)"
            ],
        ),
        (["+49151123456789012"], [f"to[0]: '+49151123456789012' {E164}"]),
    ],
)
def test_bad_numbers(to: Any, lines: list[str]) -> None:
    assert errors(to=to) == lines


@pytest.mark.parametrize(
    ("sender", "shown"),
    [("DBackup", "'DBackup'"), ("MG123", "'MG123'"), ("0151 12345678", "'0151 12345678'")],
)
def test_bad_senders(sender: str, shown: str) -> None:
    assert errors(**{"from": sender}) == [
        "from: must be a Twilio number of this account in E.164 form (e.g. +15017122661) or "
        f"a messaging service SID (MG and 32 hexadecimal digits) (got {shown})"
    ]


@pytest.mark.parametrize("sid", ["AC123", "SK" + "0" * 32, "AC" + "g" * 32, ""])
def test_bad_account_sid(sid: str) -> None:
    assert errors(account_sid=sid) == [
        "account_sid: must be the Account SID from the Twilio Console: AC and 32 hexadecimal "
        f"digits (got {sid!r})"
    ]


def test_unknown_key_bad_url_and_missing_keys_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "channels": {
                    "sms": {
                        "type": "twilio-sms",
                        "account_sid": SID,
                        "auth_tokn": TOKEN,
                        "api_url": "ftp://api.twilio.com",
                        "to": "+4915112345678",
                    }
                },
                "routing": {"channels": ["sms"]},
            }
        )
    assert [str(i) for i in info.value.issues] == [
        "channels.sms.auth_tokn: unknown key; did you mean 'auth_token'?",
        "channels.sms.auth_token: required, not set (the account's Auth Token (HTTP basic "
        'auth with the Account SID)); e.g. auth_token = { env = "TWILIO_AUTH_TOKEN" }',
        "channels.sms.from: required, not set (the sender: a Twilio number (E.164) or a "
        'messaging service SID (MG...)); e.g. from = "+15017122661"',
        'channels.sms.api_url: must be an http:// or https:// URL, e.g. "https://api.twilio.com" '
        "(got 'ftp://api.twilio.com')",
    ]


def test_empty_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_TOKEN", "")
    assert errors(auth_token={"env": "TWILIO_TOKEN"}) == ["auth_token: is empty (env TWILIO_TOKEN)"]
