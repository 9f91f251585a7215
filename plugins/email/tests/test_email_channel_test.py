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
    assert stages(report) == [("connect", True), ("auth", True), ("send", True)]
    connect, auth, send = report.stages
    assert re.fullmatch(
        rf"127\.0\.0\.1:{server.port} \(STARTTLS required\); TLSv1\.[23], certificate for "
        r"(localhost|127\.0\.0\.1), expires .+",
        connect.detail,
    ), connect.detail
    assert auth.detail == "logged in as mailer"
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


async def test_implicit_tls_connect_detail(smtp_server: Any, make_notifier: Any, tls: Any) -> None:
    server = await smtp_server(implicit_tls=True)
    report = await make_notifier(server.port, security="ssl", tls_ca_file=tls.ca_file).test("mail")

    assert report.ok, report
    assert report.stages[0].detail.startswith(f"127.0.0.1:{server.port} (implicit TLS); TLSv1.")
    assert report.stages[1].detail == "skipped: no user configured"


async def test_plain_connect_detail(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server()
    report = await make_notifier(server.port).test("mail")

    assert report.ok, report
    assert [s.detail for s in report.stages] == [
        f"127.0.0.1:{server.port} (no TLS); no TLS",
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
    assert stages(report) == [("connect", True), ("auth", True)]
    assert report.deliveries == ()
    assert server.messages == []
    assert list(server.auth_users.values()) == [USER]  # AUTH was checked


async def test_send_message_false_sends_no_mail_command(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted()
    report = await make_notifier(server.port).test("mail", send_message=False)

    assert stages(report) == [("connect", True), ("auth", True)]
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
    assert stages(report) == [("connect", True), ("auth", False)]
    auth = report.stages[1]
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

    assert stages(report) == [("connect", False)]
    (connect,) = report.stages
    assert connect.detail == f"Connection refused to smtp server 127.0.0.1:{closed_port}"
    assert connect.hint is not None
    assert "firewall" in connect.hint


async def test_unknown_ca_fails_the_connect_stage(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server(starttls=True)
    report = await make_notifier(server.port, security="starttls").test("mail")

    assert stages(report) == [("connect", False)]
    assert report.stages[0].detail == (
        "TLS certificate not trusted: unable to get local issuer certificate"
    )
    assert "tls_ca_file" in (report.stages[0].hint or "")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_starttls_not_offered_fails_the_connect_stage(
    smtp_server: Any,
    make_notifier: Any,
    tls: Any,
) -> None:
    server = await smtp_server(credentials={USER: PASSWORD})
    report = await make_notifier(
        server.port, security="starttls", tls_ca_file=tls.ca_file, user=USER, password=PASSWORD
    ).test("mail")

    assert stages(report) == [("connect", False)]
    assert report.stages[0].detail == (
        "STARTTLS was required but the server did not offer it: possible downgrade"
    )
    assert server.auth_users == {}


async def test_sender_refused_fails_the_send_stage_with_reply_and_hint(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(replies={"MAIL": "530 5.7.0 Authentication required"})
    report = await make_notifier(server.port).test("mail")

    assert stages(report) == [("connect", True), ("auth", True), ("send", False)]
    send = report.stages[2]
    assert send.detail == (
        "the server requires authentication (server said: 530 5.7.0 Authentication required)"
    )
    assert send.hint == "set user and password"
    assert send.duration >= 0
    assert "DATA" not in server.verbs


async def test_refused_recipient_fails_the_send_stage(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server(rcpt_replies={"bad@example.com": "550 5.1.1 no such user"})
    report = await make_notifier(server.port, to=["ops@example.com", "bad@example.com"]).test(
        "mail"
    )

    assert not report.ok
    assert stages(report) == [("connect", True), ("auth", True), ("send", False)]
    assert report.stages[2].detail == "some recipients were refused"
    assert [(d.recipient, d.status, d.kind) for d in report.deliveries] == [
        ("ops@example.com", Status.DELIVERED, None),
        ("bad@example.com", Status.FAILED, FailureKind.PERMANENT),
    ]
    assert report.deliveries[1].reply == "550 5.1.1 no such user"
    (received,) = server.messages
    assert received.rcpt_tos == ("ops@example.com",)


async def test_silent_server_times_out_in_the_connect_stage(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted(greeting=None)
    report = await make_notifier(server.port, timeout=0.5).test("mail")

    assert stages(report) == [("connect", False)]
    assert report.stages[0].detail == f"Connection timed out (127.0.0.1:{server.port})"
    assert 0.4 < report.stages[0].duration < 3
