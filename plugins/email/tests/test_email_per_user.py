"""Per-user copies for user_login / user_created: the user alone, in every header."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import DispatchResult, Event, FailureKind, Status, User
from dbnotify.results import ChannelResult, Target

ADMINS = ["ops@example.com", "Security Desk <security@example.com>"]
ADMIN_ADDRESSES = ("ops@example.com", "security@example.com")
LOGIN = Event(
    "user_login",
    {"ip_address": "203.0.113.7", "user_agent": "curl/8.5"},
    user=User("alice", "alice@example.org"),
)


def routing(notify_user: str) -> dict[str, Any]:
    return {
        "events": {
            "user_login": {"enabled": True, "notify_user": notify_user},
            "user_created": {"enabled": True, "notify_user": notify_user},
        }
    }


def target(result: DispatchResult, which: Target) -> ChannelResult:
    (found,) = [c for c in result.channels if c.target is which]
    return found


def headers(received: Any) -> str:
    return received.data.split(b"\r\n\r\n", 1)[0].decode("ascii")


async def test_also_sends_the_user_a_copy_of_their_own(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server()
    notifier = make_notifier(server.port, to=ADMINS, routing=routing("also"))

    result = await notifier.notify(LOGIN)
    assert result.ok, result
    assert [r.recipient for r in target(result, Target.CHANNEL).recipients] == list(ADMIN_ADDRESSES)
    assert [(r.recipient, r.status) for r in target(result, Target.USER).recipients] == [
        ("alice@example.org", Status.DELIVERED)
    ]

    assert len(server.messages) == 2
    (admins,) = [m for m in server.messages if m.rcpt_tos == ADMIN_ADDRESSES]
    (user,) = [m for m in server.messages if m.rcpt_tos == ("alice@example.org",)]
    assert [a.addr_spec for a in admins.message["To"].addresses] == list(ADMIN_ADDRESSES)
    assert [a.addr_spec for a in user.message["To"].addresses] == ["alice@example.org"]
    assert user.message["Subject"] == "[DBackup] New Sign-in to Your Account"
    assert admins.message["Subject"] == "[DBackup] User Login"
    assert user.message["Message-ID"] == f"<{result.notification_id}.user@example.com>"
    assert admins.message["Message-ID"] == f"<{result.notification_id}@example.com>"
    for admin in ADMIN_ADDRESSES:
        assert admin not in headers(user)
    assert "Security Desk" not in headers(user)
    assert "Someone signed in to your account 'alice'." in user.part("plain")
    assert "User 'alice' logged in." in admins.part("plain")


async def test_only_sends_the_users_copy_alone(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server()
    notifier = make_notifier(server.port, to=ADMINS, routing=routing("only"))

    result = await notifier.notify(
        Event("user_created", {"created_by": "root"}, user=User("bob", "bob@example.org"))
    )
    assert [(c.target, [r.recipient for r in c.recipients]) for c in result.channels] == [
        (Target.USER, ["bob@example.org"])
    ]
    (received,) = server.messages
    assert received.rcpt_tos == ("bob@example.org",)
    assert received.message["To"] == "bob@example.org"
    assert received.message["Subject"] == "[DBackup] Your Account Was Created"
    assert "An account 'bob' was created for you by 'root'." in received.part("plain")
    for admin in ADMIN_ADDRESSES:
        assert admin not in headers(received)


async def test_user_address_from_the_email_data_key(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server()
    notifier = make_notifier(server.port, routing=routing("only"))

    await notifier.notify(Event("user_login", {"user_name": "carol", "email": "carol@example.org"}))
    (received,) = server.messages
    assert received.rcpt_tos == ("carol@example.org",)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (
            "not-an-address",
            "'not-an-address' is not a valid email address: An email address must have an @-sign.",
        ),
        (
            "alice@example.org(<attacker@evil.example>",
            "'alice@example.org(<attacker@evil.example>' is ambiguous: a display name with any of "
            '( ) < > [ ] : ; @ \\ , " must be in double quotes, e.g. "Ops, Night Shift" '
            "<ops@example.com>",
        ),
        (
            '"=?UTF-8?Q?=0D=0A?=Bcc: evil@example.net" <alice@example.org>',
            '\'"=?UTF-8?Q?=0D=0A?=Bcc: evil@example.net" <alice@example... has an encoded word '
            "(=?...?=) in its display name; write the name as plain text (Unicode is fine)",
        ),
    ],
)
async def test_invalid_user_address_fails_that_recipient_only(
    smtp_server: Any,
    make_notifier: Any,
    address: str,
    reason: str,
) -> None:
    server = await smtp_server()
    notifier = make_notifier(server.port, to=ADMINS, routing=routing("also"))

    result = await notifier.notify(Event("user_login", {"user_name": "alice", "email": address}))
    assert all(r.status is Status.DELIVERED for r in target(result, Target.CHANNEL).recipients)
    (user,) = target(result, Target.USER).recipients
    assert (user.recipient, user.status, user.kind, user.reason, user.hint) == (
        address,
        Status.FAILED,
        FailureKind.PERMANENT,
        reason,
        "fix the user's email address in DBackup",
    )
    (received,) = server.messages  # the admins' copy, nobody else's
    assert received.rcpt_tos == ADMIN_ADDRESSES


async def test_invalid_user_address_with_only_sends_nothing(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted()
    notifier = make_notifier(server.port, routing=routing("only"))

    result = await notifier.notify(Event("user_login", {"user_name": "x", "email": "x@"}))
    (user,) = result.recipients
    assert (user.status, user.kind) == (Status.FAILED, FailureKind.PERMANENT)
    assert server.connections == 0  # an invalid address needs no connection


async def test_non_ascii_user_address_is_sent_with_smtputf8(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server()  # aiosmtpd offers SMTPUTF8
    notifier = make_notifier(server.port, to=ADMINS, routing=routing("also"))

    result = await notifier.notify(
        Event("user_login", {"user_name": "jörg", "email": "Jörg <jörg@example.org>"})
    )
    assert result.ok, result
    (user,) = target(result, Target.USER).recipients
    assert (user.recipient, user.status) == ("jörg@example.org", Status.DELIVERED)
    (copy,) = [m for m in server.messages if m.rcpt_tos == ("jörg@example.org",)]
    assert str(copy.message["To"]) == "Jörg <jörg@example.org>"
    assert "jörg@example.org".encode() in copy.data  # UTF-8 in the header, no encoding


async def test_non_ascii_user_address_fails_alone_without_smtputf8(
    scripted: Any,
    make_notifier: Any,
) -> None:
    server = await scripted()  # its EHLO offers no SMTPUTF8
    notifier = make_notifier(server.port, to=ADMINS, routing=routing("also"))

    result = await notifier.notify(
        Event("user_login", {"user_name": "jörg", "email": "jörg@example.org"})
    )
    assert all(r.status is Status.DELIVERED for r in target(result, Target.CHANNEL).recipients)
    (user,) = target(result, Target.USER).recipients
    assert (user.recipient, user.status, user.kind, user.reason, user.reply, user.hint) == (
        "jörg@example.org",
        Status.FAILED,
        FailureKind.PERMANENT,
        "this address has non-ASCII characters before the @, and the server does not "
        "support SMTPUTF8",
        None,
        "ask the mail provider for SMTPUTF8 support, or use an ASCII address",
    )
    assert server.envelopes == [("dbackup@example.com", ADMIN_ADDRESSES)]
    assert not any("jörg" in c for c in server.commands)
