"""The email channel's configuration: what is accepted, and every error word for word."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from dbnotify import ConfigError, load_config
from dbnotify.plugins import default_registry
from dbnotify_email.settings import EmailConfig, Security

BASE: dict[str, Any] = {
    "host": "smtp.example.com",
    "from": "dbackup@example.com",
    "to": ["ops@example.com"],
}


def validate(**options: Any) -> EmailConfig:
    plugin = default_registry().get("email")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({**BASE, **options})
    assert isinstance(config, EmailConfig)
    return config


def error_text(**options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    return str(info.value)


def one_error(line: str) -> str:
    return f"1 configuration error:\n  {line}"


# --- accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("ssl", 465), ("none", 25)])
def test_port_default_follows_security(security: str, port: int) -> None:
    config = validate(security=security)
    assert config.security is Security(security)
    assert config.port is None
    assert config.effective_port == port
    assert f"port={port}" in repr(config)


def test_defaults_are_starttls_on_587() -> None:
    config = validate()
    assert config.security is Security.STARTTLS
    assert config.effective_port == 587
    assert config.timeout == 30.0
    assert config.user is None
    assert config.password is None
    assert config.tls_ca_file is None


def test_explicit_port_wins_over_the_default() -> None:
    assert validate(security="ssl", port=2525).effective_port == 2525


def test_to_as_list_and_as_separated_string_give_the_same_recipients() -> None:
    from_list = validate(to=["a@x.org", "b@x.org", "c@x.org"])
    from_text = validate(to="a@x.org; b@x.org, c@x.org")
    assert [str(m) for m in from_list.to] == ["a@x.org", "b@x.org", "c@x.org"]
    assert from_text.to == from_list.to


def test_quoted_display_name_with_a_comma_is_one_address_in_both_forms() -> None:
    entry = '"Bob, evil@example.net" <bob@example.com>'
    for to in ([entry], entry, f"{entry}; ops@example.com"):
        config = validate(to=to)
        assert config.to[0].envelope == "bob@example.com"
        assert config.to[0].display_name == "Bob, evil@example.net"
    assert [m.envelope for m in validate(to=f"{entry}; ops@example.com").to] == [
        "bob@example.com",
        "ops@example.com",
    ]


def test_unicode_domain_and_display_name_are_accepted() -> None:
    (mailbox,) = validate(to=["Jörg Müller <jorg@bücher.example>"]).to
    assert (mailbox.display_name, mailbox.addr, mailbox.envelope) == (
        "Jörg Müller",
        "jorg@bücher.example",
        "jorg@xn--bcher-kva.example",
    )


def test_non_ascii_local_part_is_accepted_and_needs_smtputf8() -> None:
    # sent with SMTPUTF8 when the server offers it; fails for that recipient when not
    ops, jorg = validate(to=["ops@example.com", "Jörg <jörg@bücher.example>"]).to
    assert (jorg.display_name, jorg.addr, jorg.envelope) == (
        "Jörg",
        "jörg@bücher.example",
        "jörg@bücher.example",
    )
    assert jorg.needs_smtputf8
    assert not ops.needs_smtputf8


def test_from_with_display_name() -> None:
    config = validate(**{"from": "DBackup Alerts <dbackup@example.com>"})
    assert config.from_.display_name == "DBackup Alerts"
    assert config.from_.envelope == "dbackup@example.com"


def test_plaintext_auth_needs_saying_so_in_words() -> None:
    config = validate(security="none", user="u", password="pw", allow_plaintext_auth=True)
    assert config.user == "u"


def test_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBNOTIFY_TEST_SMTP_PASSWORD", "from-env-secret")
    config = validate(user="u", password={"env": "DBNOTIFY_TEST_SMTP_PASSWORD"})
    assert config.password is not None
    assert config.password.reveal() == "from-env-secret"
    assert "from-env-secret" not in repr(config)
    assert "from-env-secret" not in str(config)


def test_repr_never_shows_the_password() -> None:
    config = validate(user="mailer", password="Sup3r-Secret-Pw")
    assert repr(config) == (
        "EmailConfig(host='smtp.example.com', port=587, security='starttls', user='mailer', "
        "auth='auto', from='dbackup@example.com', to=['ops@example.com'])"
    )
    assert "Sup3r-Secret-Pw" not in repr(config.password)


# --- refused, word for word ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            {"to": ["ops@example.com", "not-an-address"]},
            "to[1]: 'not-an-address' is not a valid email address: "
            "An email address must have an @-sign.",
            id="invalid-address-in-list",
        ),
        pytest.param(
            {"to": "ops@example.com; bad@"},
            "to[1]: 'bad@' is not a valid email address: There must be something after the @-sign.",
            id="invalid-address-in-string",
        ),
        pytest.param({"to": []}, "to: must name at least one address", id="to-empty-list"),
        pytest.param(
            {"to": " ; , "}, "to: must name at least one address", id="to-only-separators"
        ),
        pytest.param(
            {"to": 5},
            "to: must be a list of email addresses, or one string of addresses separated by "
            "commas (got 5)",
            id="to-wrong-type",
        ),
        pytest.param({"port": 0}, "port: must be between 1 and 65535 (got 0)", id="port-zero"),
        pytest.param(
            {"port": 70000}, "port: must be between 1 and 65535 (got 70000)", id="port-too-high"
        ),
        pytest.param({"port": "587"}, "port: must be an integer (got '587')", id="port-string"),
        pytest.param(
            {"security": "tls"},
            "security: must be one of none, ssl, starttls (got 'tls'); did you mean 'starttls' "
            "(TLS after connecting, usually port 587) or 'ssl' (TLS from the start, usually "
            "port 465)?",
            id="security-tls",
        ),
        pytest.param(
            {"security": "STARTTLS"},
            "security: must be one of none, ssl, starttls (got 'STARTTLS'); did you mean "
            "'starttls'?",
            id="security-upper-case",
        ),
        pytest.param(
            {"security": "startls"},
            "security: must be one of none, ssl, starttls (got 'startls'); did you mean "
            "'starttls'?",
            id="security-typo",
        ),
        pytest.param(
            {"user": "mailer"},
            "password: required when user is set; set both, or neither",
            id="user-without-password",
        ),
        pytest.param(
            {"password": "pw"},
            "user: required when password is set; set both, or neither",
            id="password-without-user",
        ),
        pytest.param(
            {"security": "none", "user": "mailer", "password": "pw"},
            'security: "none" would send the password in clear; use "starttls" or "ssl", or '
            "set allow_plaintext_auth = true if you accept that",
            id="plaintext-auth",
        ),
        pytest.param(
            {"hots": "smtp.example.com"},
            "hots: unknown key; did you mean 'host'?",
            id="unknown-key",
        ),
        pytest.param({"timeout": 0}, "timeout: must be greater than 0 (got 0.0)", id="timeout"),
        pytest.param(
            {"from": "DBackup <dbackup@example.com>\r\nBcc: evil@example.net"},
            "from: 'DBackup <dbackup@example.com>\\r\\nBcc: evil@example.net' contains a "
            "control character (line break, tab, NUL); remove it",
            id="from-line-break",
        ),
        pytest.param(
            {"to": ["a@b.org(<c@d.com>"]},
            "to[0]: 'a@b.org(<c@d.com>' is ambiguous: a display name with any of ( ) < > [ ] : "
            '; @ \\ , " must be in double quotes, e.g. "Ops, Night Shift" <ops@example.com>',
            id="cve-2023-27043-shape",
        ),
        pytest.param(
            {"to": ["Bob, evil@example.net <bob@example.com>"]},
            "to[0]: 'Bob, evil@example.net <bob@example.com>' is ambiguous: a display name "
            'with any of ( ) < > [ ] : ; @ \\ , " must be in double quotes, e.g. '
            '"Ops, Night Shift" <ops@example.com>',
            id="unquoted-display-name-with-address",
        ),
        pytest.param(
            {"to": ['"=?UTF-8?Q?=0A?=Bcc: evil@example.net" <bob@example.com>']},
            "to[0]: '\"=?UTF-8?Q?=0A?=Bcc: evil@example.net\" <bob@example.com>' has an "
            "encoded word (=?...?=) in its display name; write the name as plain text "
            "(Unicode is fine)",
            id="encoded-word-display-name",
        ),
        pytest.param(
            {"to": ["=?x?q?y?=@example.com"]},
            "to[0]: '=?x?q?y?=@example.com' has an encoded word (=?...?=) before the @; "
            "write the address as it is delivered",
            id="encoded-word-local-part",
        ),
        pytest.param(
            {"from": '"=?utf-8?q?a?="@example.com'},
            "from: '\"=?utf-8?q?a?=\"@example.com' has an encoded word (=?...?=) before "
            "the @; write the address as it is delivered",
            id="encoded-word-quoted-local-part",
        ),
        pytest.param(
            {"host": ""}, 'host: must not be empty; e.g. "smtp.example.com"', id="host-empty"
        ),
        pytest.param(
            {"host": "  "}, 'host: must not be empty; e.g. "smtp.example.com"', id="host-blank"
        ),
        pytest.param(
            {"host": "127.0.0.1\u0000"},
            "host: must be a host name or address without spaces, line breaks or control "
            "characters (got '127.0.0.1\\x00')",
            id="host-nul",
        ),
        pytest.param(
            {"host": "smtp.example.com\r\nRSET"},
            "host: must be a host name or address without spaces, line breaks or control "
            "characters (got 'smtp.example.com\\r\\nRSET')",
            id="host-crlf",
        ),
    ],
)
def test_config_error_text(options: dict[str, Any], expected: str) -> None:
    assert error_text(**options) == one_error(expected)


def test_every_missing_required_key_is_reported_at_once() -> None:
    plugin = default_registry().get("email")
    assert plugin is not None
    with pytest.raises(ConfigError) as info:
        plugin.validate_config({})
    assert str(info.value) == (
        "3 configuration errors:\n"
        '  host: required, not set (SMTP server hostname); e.g. host = "smtp.example.com"\n'
        "  from: required, not set (sender address, optionally with a name); "
        'e.g. from = "DBackup <dbackup@example.com>"\n'
        "  to: required, not set (recipient address(es): a list, or one string separated "
        'by commas or semicolons); e.g. to = ["ops@example.com"]'
    )


def test_load_config_prefixes_the_channel_and_reports_all_problems() -> None:
    raw = {
        "channels": {
            "ops-mail": {
                "type": "email",
                **BASE,
                "hots": "x",
                "port": 0,
                "to": ["ok@example.com", "broken"],
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert [str(i) for i in info.value.issues] == [
        "channels.ops-mail.hots: unknown key; did you mean 'host'?",
        "channels.ops-mail.to[1]: 'broken' is not a valid email address: An email address "
        "must have an @-sign.",
        "channels.ops-mail.port: must be between 1 and 65535 (got 0)",
    ]


def test_tls_ca_file_must_be_a_readable_pem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    assert error_text(tls_ca_file=str(missing)) == one_error(
        f"tls_ca_file: cannot read {str(missing)!r}: No such file or directory"
    )
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n", encoding="utf-8")
    assert error_text(tls_ca_file=str(not_pem)) == one_error(
        f"tls_ca_file: {str(not_pem)!r} holds no PEM certificate; give the PEM file of the CA "
        "that signed the server's certificate"
    )


@pytest.mark.parametrize("option", ["tls_ca_file", "tls_client_cert", "tls_client_key"])
def test_a_fifo_as_a_tls_file_is_refused_without_waiting(tmp_path: Path, option: str) -> None:
    """Opening a FIFO waits for a writer: validate would hang."""
    fifo = tmp_path / "pipe.pem"
    os.mkfifo(fifo)
    cert_file = tmp_path / "client.pem"
    cert_file.write_text("a certificate\n", encoding="utf-8")
    cert = {"tls_client_cert": str(cert_file)} if option == "tls_client_key" else {}
    found: list[str] = []
    worker = threading.Thread(
        target=lambda: found.append(error_text(**cert, **{option: str(fifo)}))
    )
    worker.start()
    worker.join(5)
    while worker.is_alive():  # unblock each reader (each open waits) before failing
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(0.1)
    assert found == [
        one_error(f"{option}: {str(fifo)!r} is a FIFO (named pipe), not a regular file")
    ]


def test_tls_ca_file_accepts_a_ca_bundle(tls: Any) -> None:
    assert validate(tls_ca_file=tls.ca_file).tls_ca_file == tls.ca_file


def test_config_errors_never_show_the_password() -> None:
    secret = "Never-Show-Me-42"
    text = error_text(user="mailer", password=secret, port=0, security="tls")
    assert secret not in text
    text = error_text(security="none", user="mailer", password=secret)
    assert secret not in text
