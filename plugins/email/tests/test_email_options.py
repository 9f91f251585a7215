"""Cc, Bcc, Reply-To, one message per recipient, and the TLS options (opt-out, client cert)."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path
from typing import Any

import pytest

from dbnotify import Event, FailureKind, Status
from dbnotify.testing.smtpd import LocalSMTPServer

EVENT = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
NOT_VERIFIED = "certificate NOT verified (tls_verify = false): anyone in between can read"


def header_block(received: Any) -> bytes:
    head: bytes = received.data.split(b"\r\n\r\n", 1)[0]
    return head


# --- cc, bcc, reply_to -----------------------------------------------------------------------


async def test_cc_in_header_bcc_only_in_the_envelope(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server()
    notifier = make_notifier(
        server.port,
        to=["ops@example.com"],
        cc=["Audit Team <audit@example.com>", "dba@example.com"],
        bcc=["archive@example.net", "Hidden Person <hidden@example.org>"],
        reply_to=["Helpdesk <helpdesk@example.com>"],
    )

    result = await notifier.notify(EVENT)
    everyone = [
        "ops@example.com",
        "audit@example.com",
        "dba@example.com",
        "archive@example.net",
        "hidden@example.org",
    ]
    assert [(r.recipient, r.status) for r in result.recipients] == [
        (r, Status.DELIVERED) for r in everyone
    ]
    (received,) = server.messages  # one message for all of them
    assert received.rcpt_tos == tuple(everyone)
    msg = received.message
    assert msg["To"] == "ops@example.com"
    assert msg["Cc"] == "Audit Team <audit@example.com>, dba@example.com"
    assert msg["Reply-To"] == "Helpdesk <helpdesk@example.com>"
    assert "Bcc" not in msg
    for hidden in (b"archive@example.net", b"hidden@example.org", b"Hidden Person"):
        assert hidden not in received.data  # not in any header, nor in the body


async def test_per_recipient_gives_everyone_their_own_message(
    smtp_server: Any, make_notifier: Any
) -> None:
    server = await smtp_server()
    notifier = make_notifier(
        server.port,
        to=["ann@example.net", "Bob Brown <bob@example.net>"],
        cc=["cat@example.net", "ann@example.net"],  # ann twice: one message all the same
        bcc=["dan@example.net"],
        per_recipient=True,
    )

    result = await notifier.notify(EVENT)
    everyone = ["ann@example.net", "bob@example.net", "cat@example.net", "dan@example.net"]
    assert [(r.recipient, r.status) for r in result.recipients] == [
        (r, Status.DELIVERED) for r in everyone
    ]
    assert [m.rcpt_tos for m in server.messages] == [(r,) for r in everyone]
    ids = set()
    for received, alone in zip(server.messages, everyone, strict=True):
        msg = received.message
        assert [a.addr_spec for a in msg["To"].addresses] == [alone]
        assert "Cc" not in msg
        assert "Bcc" not in msg
        for other in everyone:
            if other != alone:
                assert other.encode() not in header_block(received)
        assert re.fullmatch(
            rf"<{result.notification_id}\.[0-9a-f]{{10}}@example\.com>", msg["Message-ID"]
        )
        ids.add(msg["Message-ID"])
    assert len(ids) == 4  # one Message-ID per recipient, stable for each
    assert server.messages[1].message["To"] == "Bob Brown <bob@example.net>"


async def test_user_copy_goes_to_the_user_alone_without_cc_and_bcc(
    smtp_server: Any, make_notifier: Any
) -> None:
    server = await smtp_server()
    notifier = make_notifier(
        server.port,
        cc=["audit@example.com"],
        bcc=["archive@example.net"],
        routing={"events": {"user_login": {"enabled": True, "notify_user": "only"}}},
    )

    await notifier.notify(Event("user_login", {"user_name": "ann", "email": "ann@example.org"}))
    (received,) = server.messages
    assert received.rcpt_tos == ("ann@example.org",)
    assert b"audit@example.com" not in received.data
    assert "Cc" not in received.message


# --- tls_verify = false ------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_tls_verify_false_delivers_to_an_unknown_ca_and_says_so(
    smtp_server: Any,
    make_notifier: Any,
    caplog: pytest.LogCaptureFixture,
    security: str,
) -> None:
    server = await smtp_server(starttls=security == "starttls", implicit_tls=security == "ssl")
    notifier = make_notifier(server.port, security=security, tls_verify=False)  # no CA file

    with caplog.at_level(logging.WARNING, logger="dbnotify_email"):
        result = await notifier.notify(EVENT)
        report = await notifier.test("mail")
    assert [r.status for r in result.recipients] == [Status.DELIVERED]
    assert report.ok, report
    (tls_stage,) = [s for s in report.stages if s.name == "tls"]
    prefix = "STARTTLS: " if security == "starttls" else ""
    assert re.fullmatch(
        rf"{prefix}TLSv1\.[23]; {re.escape(NOT_VERIFIED)}"
        + ("" if security == "starttls" else r"; greeting 220 .+"),
        tls_stage.detail,
    ), tls_stage.detail
    assert [m.tls for m in server.messages] == [True, True]
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("dbnotify_email")]
    assert warnings == [f"email to 127.0.0.1: {NOT_VERIFIED}"] * 2  # loud, every connection


async def test_tls_verify_true_is_the_default(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server(starttls=True)
    (recipient,) = (await make_notifier(server.port, security="starttls").notify(EVENT)).recipients
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert recipient.reason == "TLS certificate not trusted: unable to get local issuer certificate"


# --- client certificates -----------------------------------------------------------------------


@pytest.fixture
def mutual_tls(tls: Any) -> ssl.SSLContext:
    """A server context that demands a client certificate signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    tls.ca.configure_trust(context)
    return context


@pytest.mark.parametrize("key_file", ["separate", "in-the-cert-file"])
async def test_client_certificate_delivers_to_a_server_that_requires_one(
    make_notifier: Any, tls: Any, mutual_tls: ssl.SSLContext, tmp_path: Path, key_file: str
) -> None:
    client = tls.ca.issue_cert("dbnotify-client.example")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    if key_file == "separate":
        client.cert_chain_pems[0].write_to_path(str(cert))
        client.private_key_pem.write_to_path(str(key))
        options = {"tls_client_cert": str(cert), "tls_client_key": str(key)}
    else:
        client.private_key_and_cert_chain_pem.write_to_path(str(cert))
        options = {"tls_client_cert": str(cert)}

    async with LocalSMTPServer(tls_context=mutual_tls, require_starttls=True) as server:
        notifier = make_notifier(
            server.port, security="starttls", tls_ca_file=tls.ca_file, **options
        )
        (recipient,) = (await notifier.notify(EVENT)).recipients
        assert recipient.status is Status.DELIVERED, recipient
        (received,) = server.messages
        assert received.tls
        await notifier.aclose()


HINT_CLIENT_CERT = "set tls_client_cert (and tls_client_key) to a certificate this server accepts"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_without_a_client_certificate_the_failure_names_it_permanent(
    make_notifier: Any, tls: Any, mutual_tls: ssl.SSLContext, security: str
) -> None:
    """The server asks for a certificate in the handshake, then hangs up: not a network
    fault to retry for days, and not "check the firewall"."""
    implicit = security == "ssl"
    async with LocalSMTPServer(
        tls_context=mutual_tls, require_starttls=not implicit, implicit_tls=implicit
    ) as server:
        notifier = make_notifier(server.port, security=security, tls_ca_file=tls.ca_file)
        (recipient,) = (await notifier.notify(EVENT)).recipients
        assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.PERMANENT)
        assert recipient.reason == (
            "the server asked for a client certificate (mutual TLS) and closed the "
            "connection without one"
        ), recipient
        assert recipient.hint == HINT_CLIENT_CERT
        assert server.messages == []
        report = await notifier.test("mail", send_message=False)
        assert (report.stages[-1].name, report.stages[-1].ok) == ("tls", False)
        assert report.stages[-1].hint == HINT_CLIENT_CERT


async def test_a_client_certificate_the_server_does_not_trust_is_named(
    make_notifier: Any, tls: Any, mutual_tls: ssl.SSLContext, tmp_path: Path
) -> None:
    import trustme

    stranger = trustme.CA().issue_cert("dbnotify-client.example")
    cert = tmp_path / "client.pem"
    stranger.private_key_and_cert_chain_pem.write_to_path(str(cert))
    async with LocalSMTPServer(tls_context=mutual_tls, require_starttls=True) as server:
        notifier = make_notifier(
            server.port, security="starttls", tls_ca_file=tls.ca_file, tls_client_cert=str(cert)
        )
        (recipient,) = (await notifier.notify(EVENT)).recipients
        assert (recipient.kind, recipient.reason, recipient.hint) == (
            FailureKind.PERMANENT,
            "the server asked for a client certificate (mutual TLS) and closed the "
            "connection: it did not accept tls_client_cert",
            "check that tls_client_cert is signed by a CA the server trusts, is not "
            "expired, and is the one issued for this client",
        )
        await notifier.aclose()


def test_client_key_without_a_certificate_is_refused(tmp_path: Path) -> None:
    from dbnotify import ConfigError
    from dbnotify.plugins import default_registry

    key = tmp_path / "client.key"
    key.write_text("not used\n", encoding="utf-8")
    plugin = default_registry().get("email")
    assert plugin is not None
    with pytest.raises(ConfigError) as info:
        plugin.validate_config(
            {
                "host": "smtp.example.com",
                "from": "dbackup@example.com",
                "to": ["ops@example.com"],
                "tls_client_key": str(key),
            }
        )
    assert str(info.value) == (
        "1 configuration error:\n  tls_client_cert: required when tls_client_key is set"
    )


@pytest.mark.parametrize("key_file", ["none", "not-its-key"])
def test_client_certificate_without_its_key_is_refused_at_load(
    tls: Any, tmp_path: Path, key_file: str
) -> None:
    """Without its key the server ends the handshake: every send would fail."""
    from dbnotify import ConfigError
    from dbnotify.plugins import default_registry

    client = tls.ca.issue_cert("dbnotify-client.example")
    cert = tmp_path / "client.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    options = {"tls_client_cert": str(cert)}
    if key_file == "not-its-key":
        other = tmp_path / "other.key"
        tls.ca.issue_cert("other.example").private_key_pem.write_to_path(str(other))
        options["tls_client_key"] = str(other)
    plugin = default_registry().get("email")
    assert plugin is not None
    with pytest.raises(ConfigError) as info:
        plugin.validate_config(
            {"host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com", **options}
        )
    assert str(info.value) == "1 configuration error:\n  " + (
        f"tls_client_key: required: tls_client_cert {str(cert)!r} holds no private key; "
        "set tls_client_key to the PEM file of its key"
        if key_file == "none"
        else "tls_client_cert: cannot load it with tls_client_key: KEY_VALUES_MISMATCH"
    )


# --- local_hostname ----------------------------------------------------------------------------


async def test_local_hostname_is_the_ehlo_name(scripted: Any, make_notifier: Any) -> None:
    server = await scripted()
    notifier = make_notifier(server.port, local_hostname="backup-01.example.org")

    (recipient,) = (await notifier.notify(EVENT)).recipients
    assert recipient.status is Status.DELIVERED
    assert server.commands[0] == "EHLO backup-01.example.org"
    await notifier.aclose()


def test_local_hostname_is_checked_when_the_config_loads(make_notifier: Any) -> None:
    from dbnotify import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_notifier(2525, local_hostname="bad host\r\nMAIL FROM:<x@y>")
    assert [str(i) for i in caught.value.issues] == [
        "channels.mail.local_hostname: must be a host name such as mail.example.com, or an "
        "address literal such as [192.0.2.1] (got 'bad host\\r\\nMAIL FROM:<x@y>')"
    ]


async def test_users_copy_has_no_reply_to_and_duplicates_get_one_rcpt(
    smtp_server: Any, make_notifier: Any
) -> None:
    from dbnotify import Event, User

    server = await smtp_server()
    notifier = make_notifier(
        server.port,
        to=["ops@example.com", "Ops Team <OPS@example.com>"],
        reply_to="helpdesk@example.com",
        routing={
            "channels": ["mail"],
            "events": {"user_login": {"enabled": True, "notify_user": "also"}},
        },
    )
    await notifier.notify(
        Event("user_login", {"user_name": "al"}, user=User("al", "al@example.org"))
    )
    await notifier.aclose()
    (admins,) = [m for m in server.messages if m.rcpt_tos != ("al@example.org",)]
    (user,) = [m for m in server.messages if m.rcpt_tos == ("al@example.org",)]
    assert admins.rcpt_tos == ("ops@example.com",)
    assert admins.message["Reply-To"] == "helpdesk@example.com"
    assert user.message["Reply-To"] is None
