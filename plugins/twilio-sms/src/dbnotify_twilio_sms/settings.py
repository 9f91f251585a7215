"""The Twilio SMS channel's configuration block."""

from __future__ import annotations

import re
from typing import Any, NewType

import attrs

from dbnotify.channel import (
    ConfigError,
    ConfigIssue,
    Secret,
    describe_value,
    make_converter,
    positive,
    setting,
)
from dbnotify.http import api_url

DEFAULT_API = "https://api.twilio.com"

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SEPARATORS = re.compile(r"[\s().-]")
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")

PhoneNumber = NewType("PhoneNumber", str)
"""An E.164 number, ``+`` and digits only (spaces, dots, dashes, brackets removed)."""

Numbers = NewType("Numbers", tuple[PhoneNumber, ...])
"""One or more numbers: a list, or one string separated by commas or semicolons."""

Sender = NewType("Sender", str)
"""An E.164 number, or a messaging service SID (``MG`` and 32 hexadecimal digits)."""


def phone_number(value: Any) -> PhoneNumber:
    """``value`` as an E.164 number, or ValueError saying how to write it."""
    if not isinstance(value, str):
        raise ValueError(f"must be a phone number as a string (got {describe_value(value)})")
    number = _SEPARATORS.sub("", value)
    if _E164.fullmatch(number):
        return PhoneNumber(number)
    hint = ""
    if number.startswith("00") and _E164.fullmatch("+" + number[2:]):
        hint = f"; did you mean {'+' + number[2:]!r}?"
    raise ValueError(
        f"{value!r} is not an E.164 number: write + and the country code, then the number "
        f"without its leading 0, e.g. +4915112345678{hint}"
    )


def _numbers(value: Any, _cl: Any) -> tuple[PhoneNumber, ...]:
    if isinstance(value, str):
        items: list[Any] = [p.strip() for p in re.split(r"[,;]", value)]
        if items == [""]:
            items = []
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(
            f"must be a list of numbers, or one string separated by commas "
            f"(got {describe_value(value)})"
        )
    if not items:
        raise ValueError('must name at least one number, e.g. "+4915112345678"')
    issues: list[ConfigIssue] = []
    found: dict[str, PhoneNumber] = {}
    for index, item in enumerate(items):
        try:
            number = phone_number(item)
        except ValueError as exc:
            issues.append(ConfigIssue(f"[{index}]", str(exc)))
            continue
        found.setdefault(number, number)  # the same number twice: one message
    if issues:
        raise ConfigError(issues)
    return tuple(found.values())


def _sender(value: Any, _cl: Any) -> Sender:
    if isinstance(value, str) and _SERVICE_SID.fullmatch(value.strip()):
        return Sender(value.strip())
    try:
        return Sender(phone_number(value))
    except ValueError:
        raise ValueError(
            "must be a Twilio number of this account in E.164 form (e.g. +15017122661) or a "
            f"messaging service SID (MG and 32 hexadecimal digits) (got {describe_value(value)})"
        ) from None


CONVERTER = make_converter()
"""This channel's own converter: the core's hooks, and these for its own types."""
CONVERTER.register_structure_hook(Numbers, _numbers)
CONVERTER.register_structure_hook(Sender, _sender)


def _account_sid(_inst: Any, _attr: Any, value: str) -> None:
    if not _ACCOUNT_SID.fullmatch(value):
        raise ValueError(
            "must be the Account SID from the Twilio Console: AC and 32 hexadecimal digits "
            f"(got {describe_value(value)})"
        )


def _not_empty_secret(_inst: Any, _attr: Any, value: Secret) -> None:
    if not value.reveal().strip():
        raise ValueError(f"is empty ({value.source})")


http_url = api_url("https://api.twilio.com", credentials="use account_sid and auth_token")


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


@attrs.frozen
class TwilioSmsConfig:
    account_sid: str = setting(
        validator=_account_sid,
        description="the Account SID (Twilio Console, Account Info)",
        example='"AC0123456789abcdef0123456789abcdef"',
    )
    auth_token: Secret = setting(
        validator=_not_empty_secret,
        description="the account's Auth Token (HTTP basic auth with the Account SID)",
        example='{ env = "TWILIO_AUTH_TOKEN" }',
    )
    from_: Sender = setting(
        key="from",
        description="the sender: a Twilio number (E.164) or a messaging service SID (MG...)",
        example='"+15017122661"',
    )
    to: Numbers = setting(
        description="recipient number(s) in E.164: a list, or one string separated by commas",
        example='["+4915112345678"]',
    )
    api_url: str = setting(
        default=DEFAULT_API,
        validator=http_url,
        converter=_strip_slash,
        description="the Twilio REST API (a test server)",
    )
    timeout: float = setting(
        default=15.0, validator=positive, description="seconds to wait for each request"
    )

    @property
    def uses_service(self) -> bool:
        """``from`` is a messaging service: sent as MessagingServiceSid, not From."""
        return bool(_SERVICE_SID.fullmatch(self.from_))
