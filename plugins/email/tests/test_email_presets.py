"""``preset = "gmail"`` and friends: host, port and security filled in; explicit keys win."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import ConfigError, Event, Status, load_config
from dbnotify.plugins import default_registry
from dbnotify_email.settings import EmailConfig, Security

ADDRESSES: dict[str, Any] = {"from": "dbackup@example.com", "to": ["ops@example.com"]}
KNOWN = "gmail, sendgrid, mailgun, ses, mailtrap, postfix"


def validate(**options: Any) -> EmailConfig:
    plugin = default_registry().get("email")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({**ADDRESSES, **options})
    assert isinstance(config, EmailConfig)
    return config


def error_text(**options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    return str(info.value)


def one_error(line: str) -> str:
    return f"1 configuration error:\n  {line}"


def where(config: EmailConfig) -> tuple[str, int, Security]:
    return config.host, config.effective_port, config.security


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("gmail", ("smtp.gmail.com", 587, Security.STARTTLS)),
        ("sendgrid", ("smtp.sendgrid.net", 587, Security.STARTTLS)),
        ("mailgun", ("smtp.mailgun.org", 587, Security.STARTTLS)),
        ("mailtrap", ("sandbox.smtp.mailtrap.io", 2525, Security.STARTTLS)),
        ("ses", ("email-smtp.us-east-1.amazonaws.com", 587, Security.STARTTLS)),
    ],
)
def test_preset_fills_host_port_and_security(
    preset: str, expected: tuple[str, int, Security]
) -> None:
    assert where(validate(preset=preset)) == expected


def test_ses_region_names_the_endpoint() -> None:
    config = validate(preset="ses", region="eu-central-1")
    assert where(config) == ("email-smtp.eu-central-1.amazonaws.com", 587, Security.STARTTLS)


def test_ses_region_must_look_like_one() -> None:
    assert error_text(preset="ses", region="eu central 1") == one_error(
        "region: not an AWS region name (got 'eu central 1')"
    )


def test_region_only_with_ses() -> None:
    expected = one_error('region: only used with preset = "ses"')
    assert error_text(preset="gmail", region="eu-west-1") == expected
    assert error_text(host="smtp.example.com", region="eu-west-1") == expected


def test_postfix_needs_a_host() -> None:
    assert error_text(preset="postfix") == one_error(
        'host: required with preset = "postfix", e.g. host = "mail.example.com"'
    )
    assert where(validate(preset="postfix", host="mail.example.com")) == (
        "mail.example.com",
        587,
        Security.STARTTLS,
    )


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("gmial", f"preset: unknown preset 'gmial'; did you mean 'gmail'? (known: {KNOWN})"),
        ("Mailgun", f"preset: unknown preset 'Mailgun'; did you mean 'mailgun'? (known: {KNOWN})"),
        ("exchange", f"preset: unknown preset 'exchange' (known: {KNOWN})"),
        (5, f"preset: unknown preset 5 (known: {KNOWN})"),
    ],
)
def test_unknown_preset_suggests_the_nearest(preset: Any, expected: str) -> None:
    assert error_text(preset=preset) == one_error(expected)


def test_explicit_keys_win_over_the_preset() -> None:
    config = validate(preset="gmail", port=465, security="ssl")
    assert where(config) == ("smtp.gmail.com", 465, Security.SSL)
    config = validate(preset="mailtrap", host="live.smtp.mailtrap.io")
    assert where(config) == ("live.smtp.mailtrap.io", 2525, Security.STARTTLS)
    config = validate(preset="ses", region="eu-west-1", host="vpce.example.internal")
    assert config.host == "vpce.example.internal"


def test_preset_keys_are_checked_like_written_ones() -> None:
    # an explicit port 465 with the preset's starttls is refused as if both were written
    assert error_text(preset="gmail", port=465) == one_error(
        "security: port 465 speaks TLS from the start: use security = \"ssl\" (got 'starttls')"
    )


def test_preset_errors_are_prefixed_with_the_channel() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"channels": {"ops-mail": {"type": "email", "preset": "gmial", **ADDRESSES}}})
    assert [str(i) for i in info.value.issues] == [
        f"channels.ops-mail.preset: unknown preset 'gmial'; did you mean 'gmail'? (known: {KNOWN})"
    ]


async def test_a_preset_with_local_overrides_delivers(
    smtp_server: Any, make_notifier: Any, tls: Any
) -> None:
    server = await smtp_server(starttls=True, require_starttls=True)
    notifier = make_notifier(
        server.port, preset="mailtrap", security="starttls", tls_ca_file=tls.ca_file
    )  # host and port from make_notifier win over the preset's

    result = await notifier.notify(Event("backup_success", {"job_name": "nightly-pg"}))
    assert [r.status for r in result.recipients] == [Status.DELIVERED]
    (received,) = server.messages
    assert received.tls
