"""The 24 "Behaviours to survive" of the SMTP hazards list, one test each, in its order.

Every test talks to a real server on this machine: aiosmtpd (``smtp_server``) where it
can misbehave enough, else the raw asyncio script (``scripted``). Each checks one
delivery attempt: its outcome, its class (transient: retry later; permanent: do not
retry unchanged) and the reason and hint the operator reads. Retrying is not the
channel's job; the class says whether a retry makes sense.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from dbnotify import (
    ConfigError,
    DispatchResult,
    Event,
    FailureKind,
    Notifier,
    RecipientResult,
    Status,
)
from dbnotify.testing.smtpd import LocalSMTPServer

EVENT = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
USER = "mailer"
PASSWORD = "correct-horse-battery-staple"
TRANSIENT, PERMANENT = FailureKind.TRANSIENT, FailureKind.PERMANENT

HINT_TIMEOUT = (
    "check the port (a common mistake is 25 instead of 587); check for a "
    "firewall in between; try another security setting; raise timeout if the "
    "server is slow"
)
HINT_NO_GREETING = (
    "the server accepted the connection but said nothing; if this port speaks TLS from "
    'the start (like 465), use security = "ssl"; ' + HINT_TIMEOUT
)
HINT_CLOSED = (
    "try again later; if it keeps happening, check the security setting and the server's logs"
)
MAYBE_ARRIVED = " while sending the message; it may or may not have arrived"
HINT_DUPLICATE = "sending again may deliver it twice: a duplicate is better than a loss"
HINT_TLS = (
    "the server's certificate was not accepted; if it is signed by a private CA, set "
    "tls_ca_file to that CA's PEM file; check that host matches the certificate"
)
HINT_AUTH = (
    "double-check user and password; Gmail needs an App Password, not your regular "
    "password; check that the security setting matches what the server expects; "
    "some providers require enabling SMTP access"
)
DOWNGRADE = "STARTTLS was required but the server did not offer it: possible downgrade"
HINT_DOWNGRADE = (
    "the server (or something between) hides STARTTLS; dbnotify sends nothing more "
    "over a plain connection when security is starttls; use ssl if the server "
    "supports it"
)
HINT_NOT_TLS = "this server is not speaking TLS: use starttls or none"
NON_ASCII_LOCAL_PART = (
    "this address has non-ASCII characters before the @, and the server does not support SMTPUTF8"
)
EHLO_STARTTLS = "250-raw.test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN"
EHLO_PIPELINING = "250-raw.test\r\n250 PIPELINING"
EHLO_ONE_BY_ONE = "250 raw.test"

AUTH_IN_CLEAR = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"
)


def results(result: DispatchResult) -> list[RecipientResult]:
    return list(result.recipients)


def failed(result: DispatchResult, kind: FailureKind) -> RecipientResult:
    (only,) = result.recipients
    assert only.status is Status.FAILED, only
    assert only.kind is kind, only
    return only


def delivered(result: DispatchResult) -> RecipientResult:
    (only,) = result.recipients
    assert only.status is Status.DELIVERED, only
    return only


async def wait_until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Poll ``condition`` (the server sees a close a moment after the client does it)."""
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


# --- 1-3: the greeting ---------------------------------------------------------------------


async def test_hazard_01_silent_server_times_out_and_closes(
    scripted: Any, make_notifier: Any
) -> None:
    """#1 | accepts TCP, never greets | time out, close, transient"""
    server = await scripted(greeting=None)
    started = time.monotonic()
    result = await make_notifier(server.port, timeout=0.5).notify(EVENT)
    elapsed = time.monotonic() - started

    recipient = failed(result, TRANSIENT)
    assert recipient.reason == f"no greeting from 127.0.0.1:{server.port} within 0.5s"
    assert recipient.hint == HINT_NO_GREETING
    assert 0.45 < elapsed < 2
    await wait_until(lambda: server.closed == 1)  # the client hung up
    assert server.connections == 1


async def test_hazard_02_421_at_greeting_is_transient(scripted: Any, make_notifier: Any) -> None:
    """#2 | 421 at greeting | close, transient"""
    server = await scripted(greeting="421 4.3.2 raw.test busy, closing channel")

    recipient = failed(await make_notifier(server.port).notify(EVENT), TRANSIENT)
    assert recipient.reason == "the server is not accepting connections now"
    assert recipient.reply == "421 4.3.2 raw.test busy, closing channel"
    assert recipient.hint == "try again later"
    assert server.commands == []
    await wait_until(lambda: server.closed == 1)


async def test_hazard_03_554_at_greeting_is_permanent(scripted: Any, make_notifier: Any) -> None:
    """#3 | 554 at greeting | permanent, say so"""
    server = await scripted(greeting="554 5.7.1 raw.test: no SMTP service for you")

    recipient = failed(await make_notifier(server.port).notify(EVENT), PERMANENT)
    assert recipient.reason == "the server refused the connection"
    assert recipient.reply == "554 5.7.1 raw.test: no SMTP service for you"
    assert recipient.hint == (
        "check that this is the right server, and that it accepts mail from this machine"
    )
    assert server.commands == []


# --- 4-5: drops while sending --------------------------------------------------------------


async def test_hazard_04_drop_mid_data_is_transient(scripted: Any, make_notifier: Any) -> None:
    """#4 | drops the connection mid-DATA | transient, resend"""
    server = await scripted(drop_mid_data=True)  # 354, one line of the message, gone

    recipient = failed(await make_notifier(server.port).notify(EVENT), TRANSIENT)
    assert recipient.reason == (
        f"the server closed the connection (127.0.0.1:{server.port})" + MAYBE_ARRIVED
    )
    assert recipient.hint == HINT_DUPLICATE
    assert server.verbs == ["EHLO", "MAIL", "RCPT", "DATA"]
    assert server.data == []


async def test_hazard_05_drop_after_the_dot_is_transient_duplicate_possible(
    scripted: Any, make_notifier: Any
) -> None:
    """#5 | drops after the dot, before 250 | transient, resend (duplicate possible)"""
    server = await scripted(drop_on=".")

    recipient = failed(await make_notifier(server.port).notify(EVENT), TRANSIENT)
    assert recipient.reason == (
        f"the server closed the connection (127.0.0.1:{server.port})" + MAYBE_ARRIVED
    )
    assert recipient.hint == HINT_DUPLICATE
    assert len(server.data) == 1  # it did arrive: a resend will be a duplicate


# --- 6-9: replies to the transaction -------------------------------------------------------


async def test_hazard_06_4xx_on_one_of_three_rcpt(smtp_server: Any, make_notifier: Any) -> None:
    """#6 | 4xx on 1 of 3 RCPT | deliver to 2, retry the third"""
    server = await smtp_server(rcpt_replies={"b@x.org": "451 4.2.0 mailbox busy, try later"})
    result = await make_notifier(server.port, to=["a@x.org", "b@x.org", "c@x.org"]).notify(EVENT)

    assert results(result) == [
        RecipientResult.delivered("a@x.org", reply="250 Message accepted for delivery"),
        RecipientResult.failed(
            "b@x.org",
            TRANSIENT,
            "the server refused this recipient",
            reply="451 4.2.0 mailbox busy, try later",
            hint="try again later",
        ),
        RecipientResult.delivered("c@x.org", reply="250 Message accepted for delivery"),
    ]
    (received,) = server.messages
    assert received.rcpt_tos == ("a@x.org", "c@x.org")


async def test_hazard_07_5xx_on_one_of_three_rcpt(smtp_server: Any, make_notifier: Any) -> None:
    """#7 | 5xx on 1 of 3 RCPT | deliver to 2, report the third as failed"""
    server = await smtp_server(rcpt_replies={"c@x.org": "550 5.1.1 no such user here"})
    result = await make_notifier(server.port, to=["a@x.org", "b@x.org", "c@x.org"]).notify(EVENT)

    assert results(result) == [
        RecipientResult.delivered("a@x.org", reply="250 Message accepted for delivery"),
        RecipientResult.delivered("b@x.org", reply="250 Message accepted for delivery"),
        RecipientResult.failed(
            "c@x.org",
            PERMANENT,
            "the server refused this recipient",
            reply="550 5.1.1 no such user here",
            hint="check the address",
        ),
    ]
    (received,) = server.messages
    assert received.rcpt_tos == ("a@x.org", "b@x.org")


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_hazard_08_5xx_on_mail_from_names_the_sender_setting(
    scripted: Any, make_notifier: Any, pipelining: bool
) -> None:
    """#8 | 5xx on MAIL FROM | permanent, name the sender setting"""
    server = await scripted(
        replies={
            "MAIL": "553 5.7.1 sender not owned by user mailer",
            "EHLO": EHLO_PIPELINING if pipelining else EHLO_ONE_BY_ONE,
        }
    )

    recipient = failed(await make_notifier(server.port).notify(EVENT), PERMANENT)
    assert recipient.reason == "the server refused the sender dbackup@example.com"
    assert recipient.reply == "553 5.7.1 sender not owned by user mailer"
    assert recipient.hint == (
        "check the 'from' setting: the server may only accept addresses of your own domain "
        "or of the authenticated user"
    )
    if pipelining:  # RCPT and DATA went in the same write: the server refused both
        assert server.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "RSET"]
    else:
        assert server.verbs == ["EHLO", "MAIL", "RSET"]
    assert server.data == []


@AUTH_IN_CLEAR
async def test_hazard_09_530_auth_required_without_user(
    smtp_server: Any, make_notifier: Any
) -> None:
    """#9 | 530 AUTH required, no user configured | permanent, say "set user and password\""""
    server = await smtp_server(credentials={USER: PASSWORD})  # aiosmtpd answers MAIL 530

    recipient = failed(await make_notifier(server.port).notify(EVENT), PERMANENT)
    assert recipient.reason == "the server requires authentication"
    assert recipient.reply == "530 5.7.0 Authentication required"
    assert recipient.hint == "set user and password"
    assert server.messages == []


# --- 10-13: STARTTLS and certificates ------------------------------------------------------


async def test_hazard_10_starttls_not_offered_aborts_before_auth_and_mail(
    scripted: Any, make_notifier: Any, tls: Any
) -> None:
    """#10 | STARTTLS required but not offered | abort before AUTH and MAIL, warn of a possible downgrade"""  # noqa: E501
    server = await scripted()  # EHLO offers AUTH PLAIN LOGIN, no STARTTLS
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    recipient = failed(await notifier.notify(EVENT), PERMANENT)
    assert recipient.reason == DOWNGRADE
    assert recipient.hint == HINT_DOWNGRADE
    assert server.verbs == ["EHLO"]  # no AUTH, no MAIL, not even QUIT
    await wait_until(lambda: server.closed == 1)


async def test_hazard_11_454_to_starttls_never_falls_back_to_plain(
    scripted: Any, make_notifier: Any, tls: Any
) -> None:
    """#11 | 454 to STARTTLS | abort, never fall back to plain"""
    server = await scripted(
        replies={
            "EHLO": EHLO_STARTTLS,
            "STARTTLS": "454 4.7.0 TLS not available due to temporary reason",
        }
    )
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    recipient = failed(await notifier.notify(EVENT), TRANSIENT)
    assert recipient.reason == "the server answered 454"
    assert recipient.reply == "454 4.7.0 TLS not available due to temporary reason"
    assert recipient.hint is None
    assert server.verbs == ["EHLO", "STARTTLS"]  # nothing in clear after the refusal
    await wait_until(lambda: server.closed == 1)


async def test_hazard_12_self_signed_or_wrong_host_certificate_fails(
    make_notifier: Any, tls: Any, tmp_path: Path
) -> None:
    """#12 | self-signed or wrong-host certificate | fail, point at the CA-bundle setting"""
    # self-signed: a throwaway CA's own certificate, which nobody here trusts
    stranger = trustme.CA()
    cert, key = tmp_path / "self-signed.pem", tmp_path / "self-signed.key"
    stranger.cert_pem.write_to_path(str(cert))
    stranger.private_key_pem.write_to_path(str(key))
    self_signed = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    self_signed.load_cert_chain(str(cert), str(key))
    # wrong host: signed by the trusted CA, for another name
    wrong_host = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("mail.example.org").configure_cert(wrong_host)

    async with (
        LocalSMTPServer(tls_context=self_signed) as first,
        LocalSMTPServer(tls_context=wrong_host) as second,
    ):
        for server, reason in [
            (first, "TLS certificate not trusted: self-signed certificate"),
            (
                second,
                "TLS certificate not trusted: IP address mismatch, certificate is not valid "
                "for '127.0.0.1'.",
            ),
        ]:
            notifier = make_notifier(server.port, security="starttls", tls_ca_file=tls.ca_file)
            recipient = failed(await notifier.notify(EVENT), PERMANENT)
            assert recipient.reason == reason
            assert recipient.hint == HINT_TLS
            assert server.messages == []


async def test_hazard_13_plaintext_injected_after_starttls_220_is_discarded(
    scripted: Any, make_notifier: Any, tls: Any
) -> None:
    """#13 | plaintext injected after the STARTTLS 220 | discard it"""
    # GHSA-vxj7-4xrp-5vr4: were it read as the reply to the EHLO over TLS, the client
    # would see 554 and fail (or worse, a forged capability list)
    server = await scripted(
        replies={"EHLO": "250-raw.test\r\n250-STARTTLS\r\n250 8BITMIME"},
        starttls_context=tls.server_context,
        starttls_inject="554 5.7.0 injected in clear\r\n250 AUTH PLAIN",
    )
    notifier = make_notifier(server.port, security="starttls", tls_ca_file=tls.ca_file)

    recipient = delivered(await notifier.notify(EVENT))
    assert recipient.reply == "250 2.0.0 queued"
    assert server.verbs == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA"]
    assert server.tls_from == 2  # everything after STARTTLS went over TLS
    assert len(server.data) == 1
    await notifier.aclose()
    assert server.verbs[-1] == "QUIT"


# --- 14-16: misbehaving connections --------------------------------------------------------


async def test_hazard_14_endless_multiline_reply_is_capped(
    scripted: Any, make_notifier: Any
) -> None:
    """#14 | endless multi-line reply | cap, close, transient"""
    server = await scripted(endless_on="EHLO")  # "250-xxx..." for ever
    started = time.monotonic()
    result = await make_notifier(server.port, timeout=5).notify(EVENT)

    recipient = failed(result, TRANSIENT)
    assert recipient.reason == "the server sent an unreadable reply (Response too long)"
    assert recipient.hint == "the server (or something between) is misbehaving; check its logs"
    assert time.monotonic() - started < 2  # capped at 32 KiB, long before the timeout
    await wait_until(lambda: server.closed == 1)  # and the connection closed
    assert server.verbs == ["EHLO"]


async def test_hazard_15_slow_drip_is_ended_by_the_deadline(
    scripted: Any, make_notifier: Any
) -> None:
    """#15 | answers each command just under the timeout | an overall deadline per attempt ends it"""  # noqa: E501
    server = await scripted(delay=0.9)  # each reply 0.9 s: never over timeout = 1
    # make_notifier's ``deadline`` is dispatch.deadline: set the channel's own here
    notifier = Notifier.from_config(
        {
            "channels": {
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "security": "none",
                    "from": "dbackup@example.com",
                    "to": ["ops@example.com"],
                    "timeout": 1,
                    "deadline": 2.5,
                }
            },
            "routing": {"channels": ["mail"]},
            "dispatch": {"deadline": 10},
        }
    )
    started = time.monotonic()
    result = await notifier.notify(EVENT)
    elapsed = time.monotonic() - started

    recipient = failed(result, TRANSIENT)
    assert recipient.reason == "the server took longer than deadline = 2.5s in all"
    assert recipient.hint == (
        "the server answers too slowly (or keeps the connection busy); check it, or raise "
        "deadline; if the message was already being sent, it may or may not have arrived"
    )
    assert 2.4 < elapsed < 4
    assert server.data == []
    # `dbnotify test` stops at the same deadline (here while sending: MAIL, RCPT ...)
    report = await notifier.test("mail")
    assert [(s.name, s.ok) for s in report.stages][-3:] == [
        ("ehlo", True),
        ("auth", True),
        ("deadline", False),
    ]
    assert report.stages[-1].detail == "the test took longer than deadline = 2.5s in all"
    # the time the stage cut short took, from the end of the one before: not 0.0 ms
    assert 1.0 < report.stages[-1].duration <= 2.5
    assert sum(s.duration for s in report.stages) == pytest.approx(2.5, abs=0.3)
    assert report.stages[-1].hint == "the server answers too slowly; check it, or raise deadline"


async def test_hazard_16_disconnect_after_auth_is_transient_one_attempt(
    scripted: Any, make_notifier: Any, tls: Any
) -> None:
    """#16 | disconnects after AUTH | transient, bounded attempts"""
    server = await scripted(
        tls_context=tls.server_context,
        replies={"AUTH": "235 2.7.0 Authentication successful"},
        close_after="AUTH",
    )
    notifier = make_notifier(
        server.port, security="ssl", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    recipient = failed(await notifier.notify(EVENT), TRANSIENT)
    assert recipient.reason == f"the server closed the connection (127.0.0.1:{server.port})"
    assert recipient.hint == HINT_CLOSED
    assert server.connections == 1  # a new connection failed: one attempt, no loop
    assert server.verbs[:2] == ["EHLO", "AUTH"]
    assert "DATA" not in server.verbs


async def test_hazard_17_535_names_user_password_and_app_passwords(
    smtp_server: Any, make_notifier: Any, tls: Any
) -> None:
    """#17 | 535 on AUTH | permanent, "check user and password; Gmail needs an app password\""""
    server = await smtp_server(starttls=True, credentials={USER: PASSWORD}, auth_require_tls=True)
    notifier = make_notifier(
        server.port,
        security="starttls",
        tls_ca_file=tls.ca_file,
        user=USER,
        password="not-" + PASSWORD,
    )

    recipient = failed(await notifier.notify(EVENT), PERMANENT)
    assert recipient.reason == "Invalid login credentials"
    assert recipient.reply == "535 5.7.8 Authentication credentials invalid"
    assert recipient.hint == HINT_AUTH
    assert server.messages == []
    assert server.auth_users == {}


# --- 18-19: the wrong kind of TLS ----------------------------------------------------------


async def test_hazard_18_implicit_tls_port_with_starttls(
    smtp_server: Any, make_notifier: Any
) -> None:
    """#18 | implicit TLS on 465, config says starttls | fail fast: "port 465 speaks TLS from the start: use ssl\""""  # noqa: E501
    # on port 465 the configuration says so before anything is sent
    with pytest.raises(ConfigError) as info:
        make_notifier(465, security="starttls")
    assert [str(i) for i in info.value.issues] == [
        'channels.mail.security: port 465 speaks TLS from the start: use security = "ssl" '
        "(got 'starttls')"
    ]
    # on another port, the server waits for a TLS hello and the client for a greeting
    server = await smtp_server(implicit_tls=True)
    recipient = failed(
        await make_notifier(server.port, security="starttls", timeout=0.5).notify(EVENT),
        TRANSIENT,
    )
    assert recipient.reason == f"no greeting from 127.0.0.1:{server.port} within 0.5s"
    assert recipient.hint == HINT_NO_GREETING
    assert '(like 465), use security = "ssl"' in recipient.hint


async def test_hazard_19_plaintext_server_with_ssl_fails_fast(
    smtp_server: Any, make_notifier: Any, tls: Any
) -> None:
    """#19 | plaintext server, config says ssl | fail fast: "server is not speaking TLS: use starttls or none\""""  # noqa: E501
    server = await smtp_server()
    started = time.monotonic()
    result = await make_notifier(
        server.port, security="ssl", tls_ca_file=tls.ca_file, timeout=5
    ).notify(EVENT)

    recipient = failed(result, PERMANENT)
    assert recipient.reason == (
        f"TLS failed: the server at 127.0.0.1:{server.port} is not speaking TLS"
    )
    assert recipient.hint == HINT_NOT_TLS
    assert time.monotonic() - started < 1  # at the first bytes, not at the timeout
    assert server.messages == []


# --- 20-21: addresses and DNS --------------------------------------------------------------


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def _blackhole(port: int) -> list[socket.socket]:
    """A listener on [::1]:port whose queue is full: connecting there hangs (no answer)."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.bind(("::1", port))
    listener.listen(0)
    held = [listener]
    for _ in range(3):
        client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("::1", port))
        held.append(client)
    return held


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_hazard_20_ipv6_and_one_dead_address_among_several(
    smtp_server: Any, make_notifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#20 | host with an IPv6 address, or one dead address among several | try each address, each bounded"""  # noqa: E501
    # an IPv6-only server
    v6 = await smtp_server(host="::1")
    notifier = make_notifier(v6.port, host="::1")
    delivered(await notifier.notify(EVENT))
    (received,) = v6.messages
    assert received.rcpt_tos == ("ops@example.com",)
    report = await notifier.test("mail", send_message=False)
    assert [s.detail for s in report.stages[:2]] == ["::1 -> ::1", f"::1 port {v6.port}"]

    # a name with two addresses: [::1] answers nothing, 127.0.0.1 is the server. This
    # machine's resolver gives no such name (localhost is 127.0.0.1 only), so only the
    # DNS answer is made up; both connections are real.
    v4 = await smtp_server()
    held = _blackhole(v4.port)
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def two_addresses(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "mail.test":
            return await real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", two_addresses)
    try:
        notifier = make_notifier(v4.port, host="mail.test", timeout=0.5)
        started = time.monotonic()
        delivered(await notifier.notify(EVENT))
        elapsed = time.monotonic() - started
        assert 0.45 < elapsed < 2  # [::1] given up after timeout = 0.5, then 127.0.0.1
        assert len(v4.messages) == 1
        report = await notifier.test("mail", send_message=False)
        assert [s.detail for s in report.stages[:2]] == [
            "mail.test -> ::1, 127.0.0.1",
            f"127.0.0.1 port {v4.port}",
        ]
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    ("errno", "kind", "reason", "hint"),
    [
        pytest.param(
            socket.EAI_AGAIN,
            TRANSIENT,
            "cannot resolve host 'mail.example.invalid' now (temporary DNS failure)",
            "check this machine's DNS; try again later (with an outbox, dbnotify retries by "
            "itself)",
            id="temporary",
        ),
        pytest.param(
            socket.EAI_NONAME,
            PERMANENT,
            "unknown host 'mail.example.invalid'",
            "check the host setting",
            id="unknown-host",
        ),
    ],
)
async def test_hazard_21_dns_failure(
    make_notifier: Any,
    monkeypatch: pytest.MonkeyPatch,
    errno: int,
    kind: FailureKind,
    reason: str,
    hint: str,
) -> None:
    """#21 | DNS failure | temporary failure: transient; unknown host: permanent, name the host"""
    # no local server can fail a lookup: the resolver is the one thing mocked here
    asked: list[str] = []

    async def failing(host: str, *_args: Any, **_kwargs: Any) -> Any:
        asked.append(host)
        raise socket.gaierror(errno, "mocked resolver failure")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", failing)
    notifier = make_notifier(25, host="mail.example.invalid")

    recipient = failed(await notifier.notify(EVENT), kind)
    assert (recipient.reason, recipient.hint, recipient.reply) == (reason, hint, None)
    report = await notifier.test("mail")
    assert [(s.name, s.ok, s.detail, s.hint) for s in report.stages] == [
        ("resolve", False, reason, hint)
    ]
    assert asked == ["mail.example.invalid", "mail.example.invalid"]


# --- 22-24: what the server lacks ----------------------------------------------------------


async def test_hazard_22_no_smtputf8_idna_domain_and_non_ascii_local_part(
    scripted: Any, smtp_server: Any, make_notifier: Any
) -> None:
    """#22 | no SMTPUTF8, non-ASCII address | IDNA domain; non-ASCII local part fails for that recipient"""  # noqa: E501
    to = ["user@bücher.example", "jörg@example.com", "ops@example.com"]
    server = await scripted()  # its EHLO offers no SMTPUTF8

    result = await make_notifier(server.port, to=to).notify(EVENT)
    assert results(result) == [
        RecipientResult.delivered("user@bücher.example", reply="250 2.0.0 queued"),
        RecipientResult.failed(
            "jörg@example.com",
            PERMANENT,
            NON_ASCII_LOCAL_PART,
            hint="ask the mail provider for SMTPUTF8 support, or use an ASCII address",
        ),
        RecipientResult.delivered("ops@example.com", reply="250 2.0.0 queued"),
    ]
    assert server.envelopes == [
        ("dbackup@example.com", ("user@xn--bcher-kva.example", "ops@example.com"))
    ]
    assert server.commands[1] == "MAIL FROM:<dbackup@example.com>"  # no SMTPUTF8 asked
    (data,) = server.data
    assert max(data) < 128
    assert b"\r\nTo: user@xn--bcher-kva.example, ops@example.com\r\n" in data

    # a server with SMTPUTF8 gets all three in one message, the local part as it is
    utf8 = await smtp_server()
    result = await make_notifier(utf8.port, to=to).notify(EVENT)
    assert [(r.recipient, r.status) for r in result.recipients] == [
        (r, Status.DELIVERED) for r in to
    ]
    (received,) = utf8.messages
    assert received.rcpt_tos == (
        "user@xn--bcher-kva.example",
        "jörg@example.com",
        "ops@example.com",
    )
    assert received.message["To"] == "user@xn--bcher-kva.example, jörg@example.com, ops@example.com"


async def test_hazard_23_no_8bitmime_utf8_body_is_sent_7bit(
    scripted: Any, make_notifier: Any
) -> None:
    """#23 | no 8BITMIME, UTF-8 body | send 7-bit safe (quoted-printable or base64)"""
    server = await scripted(replies={"EHLO": "250-raw.test\r\n250 PIPELINING"})
    job, error = "Sicherung-Müller", "Festplatte voll — 100 % ✓ 備份"

    delivered(
        await make_notifier(server.port).notify(
            Event("backup_failure", {"job_name": job, "error": error})
        )
    )
    (data,) = server.data
    assert max(data) < 128  # every byte 7-bit
    assert "BODY=8BITMIME" not in server.commands[1]
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg["Subject"] == f"[DBackup] Backup Failed: {job}"
    for subtype in ("plain", "html"):
        part = msg.get_body(preferencelist=(subtype,))
        assert part is not None
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
        text = part.get_content()
        assert job in text
        assert error in text


async def test_hazard_24_452_too_many_recipients_sends_the_rest_later(
    scripted: Any, make_notifier: Any
) -> None:
    """#24 | 452 too many recipients | send the rest in a new transaction"""
    server = await scripted(rcpt_limit=2)  # the 3rd+ RCPT of a transaction: 452 4.5.3
    to = [f"r{i}@x.org" for i in range(1, 6)]

    result = await make_notifier(server.port, to=to).notify(EVENT)
    assert [(r.recipient, r.status) for r in result.recipients] == [
        (r, Status.DELIVERED) for r in to
    ]
    assert server.verbs.count("MAIL") == 3
    assert server.envelopes == [
        ("dbackup@example.com", ("r1@x.org", "r2@x.org")),
        ("dbackup@example.com", ("r3@x.org", "r4@x.org")),
        ("dbackup@example.com", ("r5@x.org",)),
    ]
    assert len(set(server.data)) == 1  # the same message each time
    assert server.connections == 1
    msg = email.message_from_bytes(server.data[0], policy=email.policy.default)
    assert msg["To"] == ", ".join(to)


async def test_hazard_17_auto_auth_makes_one_attempt_not_one_per_mechanism(
    scripted: Any, make_notifier: Any, tls: Any
) -> None:
    """#17, lockouts: with auth = "auto" a 535 is not followed by another mechanism."""
    server = await scripted(
        tls_context=tls.server_context,
        replies={"AUTH": "535 5.7.8 Authentication credentials invalid"},
    )  # EHLO offers AUTH PLAIN LOGIN
    notifier = make_notifier(
        server.port, security="ssl", tls_ca_file=tls.ca_file, user=USER, password="wrong"
    )

    recipient = failed(await notifier.notify(EVENT), PERMANENT)
    assert recipient.reason == "Invalid login credentials"
    assert [c.split()[:2] for c in server.commands if c.upper().startswith("AUTH")] == [
        ["AUTH", "PLAIN"]
    ]
