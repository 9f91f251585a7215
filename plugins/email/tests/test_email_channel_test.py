"""``Notifier.test(channel)``: the check the docs' Test button runs, stage by stage."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dbnotify import FailureKind, Status, TestReport

USER = "mailer"
PASSWORD = "correct-horse-battery-staple"


def stages(report: TestReport) -> list[tuple[str, bool]]:
    return [(s.name, s.ok) for s in report.stages]


OPENED = [("resolve", True), ("connect", True), ("greeting", True), ("ehlo", True)]
"""The stages every plain or STARTTLS test passes before TLS and AUTH."""
GREETING = re.compile(r"220 dbnotify\.test Python SMTP \S+")


async def test_starttls_with_auth_reports_every_stage_and_sends(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(starttls=True, credentials={USER: PASSWORD}, auth_require_tls=True)
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    report = await notifier.test("mail")
    assert report.ok, report
    assert stages(report) == [*OPENED, ("tls", True), ("auth", True), ("send", True)]
    resolve, connect, greeting, ehlo, tls_, auth, send = report.stages
    assert resolve.detail == "127.0.0.1 -> 127.0.0.1"
    assert connect.detail == f"127.0.0.1 port {server.port}"
    assert GREETING.fullmatch(greeting.detail), greeting.detail
    # aiosmtpd offers AUTH only over TLS here (auth_require_tls): not in the first EHLO
    assert ehlo.detail == "capabilities: 8BITMIME, HELP, SIZE, SMTPUTF8, STARTTLS"
    assert re.fullmatch(
        r"STARTTLS: TLSv1\.[23], certificate for 127\.0\.0\.1, expires .+", tls_.detail
    ), tls_.detail
    assert auth.detail == "logged in as mailer (PLAIN)"
    assert send.detail == "test email to ops@example.com"
    assert all(s.duration >= 0 and s.hint is None for s in report.stages)
    assert [(d.recipient, d.status) for d in report.deliveries] == [
        ("ops@example.com", Status.DELIVERED)
    ]

    (received,) = server.messages
    assert received.tls is True
    assert received.auth_user == USER
    assert received.message["Subject"] == "[DBackup] Test Notification"
    assert received.message["X-DBackup-Event"] == "test"


async def test_implicit_tls_stage_detail(smtp_server: Any, make_notifier: Any, tls: Any) -> None:
    server = await smtp_server(implicit_tls=True)
    report = await make_notifier(server.port, security="ssl", tls_ca_file=tls.ca_file).test("mail")

    assert report.ok, report
    assert stages(report) == [
        ("resolve", True),
        ("connect", True),
        ("tls", True),
        ("ehlo", True),
        ("auth", True),
        ("send", True),
    ]
    tls_ = report.stages[2]
    assert re.fullmatch(
        r"TLSv1\.[23], certificate for 127\.0\.0\.1, expires .+; "
        r"greeting 220 dbnotify\.test Python SMTP \S+",
        tls_.detail,
    ), tls_.detail
    assert report.stages[4].detail == "skipped: no user configured"


async def test_plain_stage_details(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server()
    report = await make_notifier(server.port).test("mail")

    assert report.ok, report
    assert stages(report) == [*OPENED, ("auth", True), ("send", True)]
    details = [s.detail for s in report.stages]
    assert GREETING.fullmatch(details.pop(2))
    assert details == [
        "127.0.0.1 -> 127.0.0.1",
        f"127.0.0.1 port {server.port}",
        "capabilities: 8BITMIME, AUTH (LOGIN PLAIN), HELP, SIZE, SMTPUTF8",
        "skipped: no user configured",
        "test email to ops@example.com",
    ]


async def test_send_message_false_stops_before_sending(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(starttls=True, credentials={USER: PASSWORD}, auth_require_tls=True)
    notifier = make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    )

    report = await notifier.test("mail", send_message=False)
    assert report.ok, report
    assert stages(report) == [*OPENED, ("tls", True), ("auth", True)]
    assert report.deliveries == ()
    assert server.messages == []
    assert list(server.auth_users.values()) == [USER]  # AUTH was checked


async def test_send_message_false_sends_no_mail_command(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted()
    report = await make_notifier(server.port).test("mail", send_message=False)

    assert stages(report) == [*OPENED, ("auth", True)]
    assert "MAIL" not in server.verbs
    assert "RCPT" not in server.verbs
    assert "DATA" not in server.verbs
    assert server.data == []


async def test_wrong_password_fails_the_auth_stage_with_reply_and_hint(
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
        password="not-the-password",
    )

    report = await notifier.test("mail")
    assert not report.ok
    assert stages(report) == [*OPENED, ("tls", True), ("auth", False)]
    auth = report.stages[-1]
    assert auth.detail == (
        "Invalid login credentials (server said: 535 5.7.8 Authentication credentials invalid)"
    )
    assert auth.hint is not None
    assert "App Password" in auth.hint
    assert server.messages == []


async def test_refused_connection_fails_the_connect_stage(
    closed_port: int,
    make_notifier: Any,
) -> None:
    report = await make_notifier(closed_port).test("mail")

    assert stages(report) == [("resolve", True), ("connect", False)]
    connect = report.stages[1]
    assert connect.detail == f"Connection refused to smtp server 127.0.0.1:{closed_port}"
    assert connect.hint is not None
    assert "firewall" in connect.hint


async def test_unknown_ca_fails_the_tls_stage(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server(starttls=True)
    report = await make_notifier(server.port, security="starttls").test("mail")

    assert stages(report) == [*OPENED, ("tls", False)]
    assert report.stages[-1].detail == (
        "TLS certificate not trusted: unable to get local issuer certificate"
    )
    assert "tls_ca_file" in (report.stages[-1].hint or "")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_starttls_not_offered_fails_the_tls_stage(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(credentials={USER: PASSWORD})
    report = await make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    ).test("mail")

    assert stages(report) == [*OPENED, ("tls", False)]
    assert report.stages[-1].detail == (
        "STARTTLS was required but the server did not offer it: possible downgrade"
    )
    assert server.auth_users == {}


async def test_sender_refused_fails_the_send_stage_with_reply_and_hint(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(replies={"MAIL": "530 5.7.0 Authentication required"})
    report = await make_notifier(server.port).test("mail")

    assert stages(report) == [*OPENED, ("auth", True), ("send", False)]
    send = report.stages[-1]
    assert send.detail == "not every recipient got the test email"
    assert send.duration >= 0
    (delivery,) = report.deliveries
    assert (delivery.status, delivery.kind, delivery.reason, delivery.reply, delivery.hint) == (
        Status.FAILED,
        FailureKind.PERMANENT,
        "the server requires authentication",
        "530 5.7.0 Authentication required",
        "set user and password",
    )
    assert server.data == []


async def test_refused_recipient_fails_the_send_stage(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server(rcpt_replies={"bad@example.com": "550 5.1.1 no such user"})
    report = await make_notifier(server.port, to=["ops@example.com", "bad@example.com"]).test(
        "mail"
    )

    assert not report.ok
    assert stages(report) == [*OPENED, ("auth", True), ("send", False)]
    assert report.stages[-1].detail == "not every recipient got the test email"
    assert [(d.recipient, d.status, d.kind) for d in report.deliveries] == [
        ("ops@example.com", Status.DELIVERED, None),
        ("bad@example.com", Status.FAILED, FailureKind.PERMANENT),
    ]
    assert report.deliveries[1].reply == "550 5.1.1 no such user"
    (received,) = server.messages
    assert received.rcpt_tos == ("ops@example.com",)


async def test_silent_server_fails_the_greeting_stage(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(greeting=None)
    report = await make_notifier(server.port, timeout=0.5).test("mail")

    assert stages(report) == [("resolve", True), ("connect", True), ("greeting", False)]
    greeting = report.stages[-1]
    assert greeting.detail == f"no greeting from 127.0.0.1:{server.port} within 0.5s"
    assert greeting.hint == (
        "the server accepted the connection but said nothing; if this port speaks TLS from "
        'the start (like 465), use security = "ssl"; check the port (a common mistake is 25 '
        "instead of 587); check for a firewall in between; try another security setting; "
        "raise timeout if the server is slow"
    )
    assert 0.4 < greeting.duration < 3
