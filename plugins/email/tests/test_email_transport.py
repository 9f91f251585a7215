"""Connecting the way the configuration says, and no weaker: TLS, AUTH, failures.

Every test talks to a real server on 127.0.0.1: aiosmtpd (``smtp_server``) or a raw
asyncio script (``scripted``) for behaviour aiosmtpd cannot produce.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from dbnotify import DispatchResult, Event, FailureKind, Notifier, RecipientResult, Status
from dbnotify.testing.smtpd import LocalSMTPServer

USER = "mailer"
PASSWORD = "correct-horse-battery-staple"
EVENT = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})

HINT_TLS = (
    "the server's certificate was not accepted; if it is signed by a private CA, set "
    "tls_ca_file to that CA's PEM file; check that host matches the certificate"
)
HINT_AUTH = (
    "double-check user and password; Gmail needs an App Password, not your regular "
    "password; check that the security setting matches what the server expects; "
    "some providers require enabling SMTP access"
)
HINT_REFUSED = (
    "check the SMTP host and port; check that a firewall allows outbound "
    "connections on that port; check that the SMTP server is running; in Docker, "
    "check that the container can reach the mail server"
)
HINT_TIMEOUT = (
    "check the port (a common mistake is 25 instead of 587); check for a "
    "firewall in between; try another security setting; raise timeout if the "
    "server is slow"
)
DOWNGRADE = "STARTTLS was required but the server did not offer it: possible downgrade"
HINT_DOWNGRADE = (
    "the server (or something between) hides STARTTLS; dbnotify sends nothing more "
    "over a plain connection when security is starttls; use ssl if the server "
    "supports it"
)
HINT_NOT_TLS = "this server is not speaking TLS: use starttls or none"
HINT_NO_GREETING = (
    "the server accepted the connection but said nothing; if this port speaks TLS from "
    'the start (like 465), use security = "ssl"; ' + HINT_TIMEOUT
)
MAYBE_ARRIVED = " while sending the message; it may or may not have arrived"
HINT_DUPLICATE = "sending again may deliver it twice: a duplicate is better than a loss"

AUTH_IN_CLEAR = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"
)
"""aiosmtpd warns when it may offer AUTH in clear: the server some tests need (and, with
implicit TLS, aiosmtpd cannot tell that the session is encrypted)."""


def single(result: DispatchResult) -> RecipientResult:
    (only,) = result.recipients
    return only


def failed(result: DispatchResult, kind: FailureKind) -> RecipientResult:
    recipient = single(result)
    assert recipient.status is Status.FAILED, recipient
    assert recipient.kind is kind, recipient
    return recipient


# --- security modes ----------------------------------------------------------------------


async def test_security_none_delivers_in_plain(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server()
    result = await make_notifier(server.port, security="none").notify(EVENT)

    recipient = single(result)
    assert recipient.status is Status.DELIVERED, recipient
    assert recipient.kind is None
    assert recipient.reason is None
    assert "Message accepted for delivery" in (recipient.reply or "")
    (received,) = server.messages
    assert received.tls is False
    assert received.mail_from == "dbackup@example.com"
    assert received.rcpt_tos == ("ops@example.com",)


async def test_starttls_delivers_over_tls(smtp_server: Any, make_notifier: Any, tls: Any) -> None:
    server = await smtp_server(starttls=True, require_starttls=True)
    notifier = make_notifier(server.port, security="starttls", tls_ca_file=tls.ca_file)

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    (received,) = server.messages
    assert received.tls is True
    assert received.rcpt_tos == ("ops@example.com",)


async def test_ssl_delivers_over_implicit_tls(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(implicit_tls=True)
    notifier = make_notifier(server.port, security="ssl", tls_ca_file=tls.ca_file)

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    (received,) = server.messages
    assert received.tls is True
    assert received.rcpt_tos == ("ops@example.com",)


async def test_plain_server_with_security_ssl_says_use_starttls_or_none(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server()
    notifier = make_notifier(server.port, security="ssl", tls_ca_file=tls.ca_file)

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == (
        f"TLS failed: the server at 127.0.0.1:{server.port} is not speaking TLS"
    )
    assert recipient.hint == HINT_NOT_TLS
    assert server.messages == []


# --- STARTTLS is required ------------------------------------------------------------------


@AUTH_IN_CLEAR
async def test_starttls_not_offered_fails_before_auth_and_mail(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    # aiosmtpd without a TLS context offers no STARTTLS, but does offer AUTH in clear
    server = await smtp_server(credentials={USER: PASSWORD})
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == DOWNGRADE
    assert recipient.hint == HINT_DOWNGRADE
    assert recipient.reply is None
    assert server.messages == []
    assert server.auth_users == {}


async def test_starttls_not_offered_sends_nothing_but_ehlo(
    scripted: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await scripted()  # EHLO offers AUTH PLAIN LOGIN, no STARTTLS
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == DOWNGRADE
    assert recipient.hint == HINT_DOWNGRADE
    assert server.verbs == ["EHLO"]  # no AUTH, no MAIL, no DATA, not even QUIT
    assert server.data == []
    assert not any(PASSWORD in c or _b64(PASSWORD) in c for c in server.commands)


async def test_starttls_refused_with_454_never_falls_back_to_plain(
    scripted: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await scripted(
        replies={
            "EHLO": "250-raw.test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN",
            "STARTTLS": "454 4.7.0 TLS not available due to temporary reason",
        }
    )
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    recipient = failed(await notifier.notify(EVENT), FailureKind.TRANSIENT)
    assert recipient.reason == "the server answered 454"
    assert recipient.reply == "454 4.7.0 TLS not available due to temporary reason"
    assert server.verbs == ["EHLO", "STARTTLS"]
    assert server.data == []


async def test_plaintext_injected_after_starttls_220_is_discarded(
    scripted: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    # GHSA-vxj7-4xrp-5vr4: bytes sent in clear behind the 220 must not be read as the
    # first reply over TLS
    server = await scripted(
        replies={"EHLO": "250-raw.test\r\n250-STARTTLS\r\n250 8BITMIME"},
        starttls_context=tls.server_context,
        starttls_inject="554 5.7.0 injected in clear",
    )
    notifier = make_notifier(server.port, security="starttls", tls_ca_file=tls.ca_file)

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    assert server.verbs[:2] == ["EHLO", "STARTTLS"]
    assert server.tls_from == 2
    assert server.verbs[2:] == ["EHLO", "MAIL", "RCPT", "DATA"]  # kept open for reuse
    assert len(server.data) == 1
    await notifier.aclose()
    assert server.verbs[2:] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


# --- certificates ----------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_certificate_from_unknown_ca_points_at_tls_ca_file(
    smtp_server: Any,
    make_notifier: Any,
    security: str,
) -> None:
    server = await smtp_server(starttls=security == "starttls", implicit_tls=security == "ssl")
    notifier = make_notifier(server.port, security=security)  # no tls_ca_file

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == (
        "TLS certificate not trusted: unable to get local issuer certificate"
    )
    assert recipient.hint == HINT_TLS
    assert "tls_ca_file" in recipient.hint
    assert server.messages == []


async def test_certificate_for_another_host_is_refused(make_notifier: Any, tls: Any) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("mail.example.org").configure_cert(context)
    async with LocalSMTPServer(tls_context=context) as server:
        notifier = make_notifier(server.port, security="starttls", tls_ca_file=tls.ca_file)

        recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
        assert recipient.reason == (
            "TLS certificate not trusted: IP address mismatch, certificate is not valid for "
            "'127.0.0.1'."
        )
        assert recipient.hint == HINT_TLS
        assert server.messages == []


@pytest.fixture
def ca_copy(tls: Any, tmp_path: Path) -> Path:
    copy = tmp_path / "ca.pem"
    copy.write_bytes(Path(tls.ca_file).read_bytes())
    return copy


async def test_ca_file_gone_after_loading_fails_permanent_sending_nothing(
    scripted: Any,
    make_notifier: Any,
    ca_copy: Path,
) -> None:
    ca_file = ca_copy
    server = await scripted()
    notifier = make_notifier(server.port, security="starttls", tls_ca_file=str(ca_file))
    ca_file.unlink()  # rotated away after the configuration was loaded

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == (
        f"tls_ca_file: cannot read {str(ca_file)!r}: No such file or directory"
    )
    assert recipient.hint == "point it at a readable PEM file"
    report = await notifier.test("mail")
    assert not report.ok
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("resolve", True, "127.0.0.1 -> 127.0.0.1"),
        ("connect", True, f"127.0.0.1 port {server.port}"),
        ("tls", False, recipient.reason),
    ]
    assert report.stages[-1].hint == "point it at a readable PEM file"
    assert server.commands == []  # connected, then closed without a word


# --- AUTH --------------------------------------------------------------------------------------


async def test_auth_with_correct_credentials_delivers(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(starttls=True, credentials={USER: PASSWORD}, auth_require_tls=True)
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    (received,) = server.messages
    assert received.auth_user == USER
    assert received.tls is True
    assert list(server.auth_users.values()) == [USER]


@AUTH_IN_CLEAR
async def test_auth_over_implicit_tls_delivers(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(implicit_tls=True, credentials={USER: PASSWORD})
    notifier = make_notifier(
        server.port, security="ssl", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    (received,) = server.messages
    assert received.auth_user == USER
    assert received.tls is True


async def test_wrong_password_is_permanent_and_names_app_passwords(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(starttls=True, credentials={USER: PASSWORD}, auth_require_tls=True)
    notifier = make_notifier(
        server.port,
        security="starttls",
        tls_ca_file=tls.ca_file,
        user=USER,
        password="wrong-" + PASSWORD,
    )

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == "Invalid login credentials"
    assert recipient.reply == "535 5.7.8 Authentication credentials invalid"
    assert recipient.hint == HINT_AUTH
    assert "App Password" in recipient.hint
    assert server.messages == []
    assert server.auth_users == {}


@AUTH_IN_CLEAR
async def test_auth_required_but_no_user_configured_says_set_user_and_password(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server(credentials={USER: PASSWORD})

    recipient = failed(await make_notifier(server.port).notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == "the server requires authentication"
    assert recipient.reply == "530 5.7.0 Authentication required"
    assert recipient.hint == "set user and password"
    assert server.messages == []


async def test_530_must_issue_starttls_says_set_security(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(replies={"MAIL": "530 5.7.0 Must issue a STARTTLS command first."})

    recipient = failed(await make_notifier(server.port).notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == "the server requires TLS first"
    assert recipient.reply == "530 5.7.0 Must issue a STARTTLS command first."
    assert recipient.hint == 'set security = "starttls" (or "ssl" on port 465)'
    assert server.data == []


async def test_auth_answered_530_starttls_first_is_not_called_bad_credentials(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(replies={"AUTH": "530 5.7.0 Must issue a STARTTLS command first."})
    notifier = make_notifier(
        server.port, security="none", user=USER, password=PASSWORD, allow_plaintext_auth=True
    )

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == "the server requires TLS first"
    assert recipient.hint == 'set security = "starttls" (or "ssl" on port 465)'
    assert "MAIL" not in server.verbs


async def test_user_configured_but_server_offers_no_auth(
    scripted: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    # aiosmtpd always lists AUTH; this server speaks implicit TLS and offers no AUTH
    server = await scripted(
        tls_context=tls.server_context, replies={"EHLO": "250-raw.test\r\n250 8BITMIME"}
    )
    notifier = make_notifier(
        server.port, security="ssl", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == "the server does not offer AUTH"
    assert recipient.hint == (
        "remove user and password if this server needs no login; otherwise check the "
        "security setting (many servers offer AUTH only over TLS)"
    )
    assert server.verbs == ["EHLO"]  # no MAIL; closed without QUIT


async def test_plaintext_auth_allowed_in_words_but_not_offered_is_not_a_downgrade(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(replies={"EHLO": "250-raw.test\r\n250 8BITMIME"})
    notifier = make_notifier(
        server.port, security="none", user=USER, password=PASSWORD, allow_plaintext_auth=True
    )

    recipient = failed(await notifier.notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == "the server does not offer AUTH over a plain connection"
    assert "MAIL" not in server.verbs


@AUTH_IN_CLEAR
async def test_plaintext_auth_allowed_in_words_authenticates(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server(credentials={USER: PASSWORD})
    notifier = make_notifier(
        server.port, security="none", user=USER, password=PASSWORD, allow_plaintext_auth=True
    )

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    (received,) = server.messages
    assert (received.auth_user, received.tls) == (USER, False)


# --- the password is never shown -------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret_forms(user: str, password: str) -> list[str]:
    """The password as text, and as AUTH PLAIN / AUTH LOGIN would carry it."""
    return [
        password,
        _b64(password),
        _b64(f"\0{user}\0{password}"),
        _b64(f"{user}\0{user}\0{password}"),
    ]


@AUTH_IN_CLEAR
async def test_password_never_appears_in_results_reprs_or_logs(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
    caplog: pytest.LogCaptureFixture,
    closed_port: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-But-Still-Secret"
    shown: list[str] = []

    async def collect(notifier: Notifier) -> None:
        result = await notifier.notify(EVENT)
        report = await notifier.test("mail")
        shown.extend(
            [
                repr(result),
                str(result),
                repr(report),
                str(report),
                repr(notifier.config),
                repr(notifier.config.channels["mail"].config),
            ]
        )
        for r in (*result.recipients, *report.deliveries):
            shown.extend(str(v) for v in (r.reason, r.reply, r.hint))
        shown.extend(f"{s.detail} {s.hint}" for s in report.stages)

    good = await smtp_server(starttls=True, credentials={USER: PASSWORD}, auth_require_tls=True)
    await collect(
        make_notifier(
            good.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
        )
    )
    await collect(
        make_notifier(
            good.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=wrong
        )
    )
    plain = await smtp_server(credentials={USER: PASSWORD})
    await collect(make_notifier(plain.port, security="starttls", user=USER, password=wrong))
    await collect(make_notifier(closed_port, security="ssl", user=USER, password=wrong))
    assert len(good.messages) == 2  # notify + test with the right password

    ours = [r.getMessage() for r in caplog.records if r.name.startswith("dbnotify")]
    assert ours, "dbnotify logs each outcome"
    text = "\n".join(shown + ours)
    for secret in (PASSWORD, wrong):
        for form in _secret_forms(USER, secret):
            assert form not in text


# --- dropped connections ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "drop_on", ["EHLO", "MAIL", "DATA", "."], ids=["at-ehlo", "at-mail", "at-data", "after-the-dot"]
)
async def test_dropped_connection_is_transient(
    scripted: Any,
    make_notifier: Any,
    drop_on: str,
) -> None:
    # after the dot, before 250: the message may have been queued; a resend (same
    # Message-ID) is better than a loss
    server = await scripted(drop_on=drop_on)

    recipient = failed(await make_notifier(server.port).notify(EVENT), FailureKind.TRANSIENT)
    closed = f"the server closed the connection (127.0.0.1:{server.port})"
    if drop_on == ".":
        # the message was sent: the server may have queued it
        assert recipient.reason == closed + MAYBE_ARRIVED
        assert recipient.hint == HINT_DUPLICATE
    else:
        assert recipient.reason == closed
        assert recipient.hint == (
            "try again later; if it keeps happening, check the security setting and the "
            "server's logs"
        )


# --- cannot connect ----------------------------------------------------------------------------


async def test_connection_refused_is_transient_with_the_docs_advice(
    closed_port: int,
    make_notifier: Any,
) -> None:
    recipient = failed(await make_notifier(closed_port).notify(EVENT), FailureKind.TRANSIENT)
    assert recipient.reason == f"Connection refused to smtp server 127.0.0.1:{closed_port}"
    assert recipient.hint == HINT_REFUSED
    assert recipient.reply is None


async def test_server_that_never_greets_times_out_transient(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(greeting=None)
    started = time.monotonic()
    result = await make_notifier(server.port, timeout=0.5).notify(EVENT)
    elapsed = time.monotonic() - started

    recipient = failed(result, FailureKind.TRANSIENT)
    assert recipient.reason == f"no greeting from 127.0.0.1:{server.port} within 0.5s"
    assert recipient.hint == HINT_NO_GREETING
    assert server.connections == 1
    assert 0.4 < elapsed < 3


async def test_slow_drip_server_is_ended_by_the_dispatch_deadline(
    scripted: Any,
    make_notifier: Any,
) -> None:
    # every reply comes just inside the per-reply timeout; the whole attempt may not
    server = await scripted(delay=0.3)
    started = time.monotonic()
    result = await make_notifier(server.port, timeout=0.5, deadline=0.8).notify(EVENT)
    elapsed = time.monotonic() - started

    recipient = failed(result, FailureKind.TRANSIENT)
    assert recipient.reason == "not delivered within 0.8s"
    assert server.data == []
    assert elapsed < 1.5


async def test_a_reply_that_never_comes_ends_at_the_per_reply_timeout(
    scripted: Any,
    make_notifier: Any,
) -> None:
    """The message is stored, its final reply held back past ``timeout``: the read
    times out (per reply, not at the deadline), the connection is closed, and the
    result says the message may have arrived."""
    server = await scripted(final_delay=3)
    started = time.monotonic()
    result = await make_notifier(server.port, timeout=0.5, deadline=10).notify(EVENT)
    elapsed = time.monotonic() - started

    recipient = failed(result, FailureKind.TRANSIENT)
    assert recipient.reason == (
        f"Connection timed out (127.0.0.1:{server.port}) while sending the message; "
        "it may or may not have arrived"
    )
    assert len(server.data) == 1  # it did arrive: hence "may have"
    assert 0.45 < elapsed < 2


async def test_deadline_ends_the_attempt_without_waiting_for_a_polite_quit(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(delay=2)  # slower than the deadline, within the timeout
    notifier = make_notifier(server.port, timeout=5, deadline=0.5)

    started = time.monotonic()
    recipient = failed(await notifier.notify(EVENT), FailureKind.TRANSIENT)
    assert recipient.reason == "not delivered within 0.5s"
    report = await notifier.test("mail")
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("deadline", False, "the test did not finish within 0.5s")
    ]
    assert time.monotonic() - started < 1.8  # not 2 x (0.5 s + a 2 s QUIT)


@pytest.mark.parametrize(
    ("greeting", "kind", "reason", "hint"),
    [
        (
            "421 4.3.2 service not available, closing channel",
            FailureKind.TRANSIENT,
            "the server is not accepting connections now",
            "try again later",
        ),
        (
            "554 5.3.2 no SMTP service here",
            FailureKind.PERMANENT,
            "the server refused the connection",
            "check that this is the right server, and that it accepts mail from this machine",
        ),
    ],
)
async def test_refusal_at_greeting(
    scripted: Any,
    make_notifier: Any,
    greeting: str,
    kind: FailureKind,
    reason: str,
    hint: str,
) -> None:
    server = await scripted(greeting=greeting)

    recipient = failed(await make_notifier(server.port).notify(EVENT), kind)
    assert recipient.reason == reason
    assert recipient.reply == greeting
    assert recipient.hint == hint
    assert server.commands == []


async def test_sender_refused_names_the_from_setting(scripted: Any, make_notifier: Any) -> None:
    server = await scripted(replies={"MAIL": "553 5.7.1 sender not owned by user"})

    recipient = failed(await make_notifier(server.port).notify(EVENT), FailureKind.PERMANENT)
    assert recipient.reason == "the server refused the sender dbackup@example.com"
    assert recipient.reply == "553 5.7.1 sender not owned by user"
    assert recipient.hint == (
        "check the 'from' setting: the server may only accept addresses of your own domain "
        "or of the authenticated user"
    )
    assert server.data == []
