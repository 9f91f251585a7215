"""Several recipients: one message to all, and an outcome for each of them."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import DispatchResult, Event, FailureKind, RecipientResult, Status

EVENT = Event("backup_success", {"job_name": "nightly-pg", "size_bytes": 1536})
ABC = ("a@x.org", "b@x.org", "c@x.org")


def by_recipient(result: DispatchResult) -> dict[str, RecipientResult]:
    return {r.recipient: r for r in result.recipients}


def to_header(received: Any) -> list[str]:
    return [a.addr_spec for a in received.message["To"].addresses]


@pytest.mark.parametrize("to", [list(ABC), "a@x.org; b@x.org, c@x.org"], ids=["list", "string"])
async def test_one_message_to_every_recipient(
    smtp_server: Any,
    make_notifier: Any,
    to: Any,
) -> None:
    server = await smtp_server()
    result = await make_notifier(server.port, to=to).notify(EVENT)

    assert [(r.recipient, r.status) for r in result.recipients] == [
        (a, Status.DELIVERED) for a in ABC
    ]
    assert result.ok
    (received,) = server.messages
    assert received.rcpt_tos == ABC
    assert to_header(received) == list(ABC)


async def test_partial_rejection_delivers_to_the_others(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server(rcpt_replies={"bad@example.com": "550 5.1.1 no such user"})
    notifier = make_notifier(server.port, to="a@x.org, bad@example.com; c@x.org")

    result = await notifier.notify(EVENT)
    outcome = by_recipient(result)
    assert outcome["a@x.org"].status is Status.DELIVERED
    assert outcome["c@x.org"].status is Status.DELIVERED
    assert outcome["bad@example.com"] == RecipientResult(
        "bad@example.com",
        Status.FAILED,
        FailureKind.PERMANENT,
        "the server refused this recipient",
        "550 5.1.1 no such user",
        "check the address",
    )
    assert not result.ok
    assert result.failed == (outcome["bad@example.com"],)
    (received,) = server.messages
    assert received.rcpt_tos == ("a@x.org", "c@x.org")


async def test_4xx_recipient_reply_is_transient(smtp_server: Any, make_notifier: Any) -> None:
    server = await smtp_server(rcpt_replies={"later@example.com": "450 4.2.0 try later"})
    notifier = make_notifier(server.port, to=["a@x.org", "later@example.com"])

    outcome = by_recipient(await notifier.notify(EVENT))
    assert outcome["a@x.org"].status is Status.DELIVERED
    later = outcome["later@example.com"]
    assert (later.status, later.kind, later.reason, later.reply) == (
        Status.FAILED,
        FailureKind.TRANSIENT,
        "the server refused this recipient",
        "450 4.2.0 try later",
    )
    (received,) = server.messages
    assert received.rcpt_tos == ("a@x.org",)


async def test_every_recipient_refused_sends_no_message(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server(
        rcpt_replies={
            "bad@example.com": "550 5.1.1 no such user",
            "later@example.com": "451 4.3.0 busy",
        }
    )
    notifier = make_notifier(server.port, to=["bad@example.com", "later@example.com"])

    outcome = by_recipient(await notifier.notify(EVENT))
    assert [(r.kind, r.reply) for r in outcome.values()] == [
        (FailureKind.PERMANENT, "550 5.1.1 no such user"),
        (FailureKind.TRANSIENT, "451 4.3.0 busy"),
    ]
    assert server.messages == []


async def test_display_names_stay_in_headers_not_in_the_envelope(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server()
    notifier = make_notifier(
        server.port, to='Ops Team <ops@example.com>; "Night, Shift" <night@example.com>'
    )

    result = await notifier.notify(EVENT)
    assert [r.recipient for r in result.recipients] == ["ops@example.com", "night@example.com"]
    (received,) = server.messages
    assert received.rcpt_tos == ("ops@example.com", "night@example.com")
    assert [(a.display_name, a.addr_spec) for a in received.message["To"].addresses] == [
        ("Ops Team", "ops@example.com"),
        ("Night, Shift", "night@example.com"),
    ]


# --- international addresses ---------------------------------------------------------------


async def test_unicode_domain_goes_out_as_idna(scripted: Any, make_notifier: Any) -> None:
    server = await scripted()  # no SMTPUTF8 needed for an IDNA domain
    result = await make_notifier(server.port, to=["ops@bücher.example"]).notify(EVENT)

    assert [(r.recipient, r.status) for r in result.recipients] == [
        ("ops@bücher.example", Status.DELIVERED)
    ]
    assert "RCPT TO:<ops@xn--bcher-kva.example>" in server.commands
    (data,) = server.data
    assert b"To: ops@xn--bcher-kva.example\r\n" in data


# --- non-ASCII local parts and servers without SMTPUTF8 -----------------------------------


NO_SMTPUTF8 = (
    "this address has non-ASCII characters before the @, and the server does not support SMTPUTF8"
)


async def test_without_smtputf8_the_others_get_a_message_without_that_address(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted()  # no SMTPUTF8
    notifier = make_notifier(server.port, to=["jörg@example.com"], cc=["ops@example.com"])

    outcome = by_recipient(await notifier.notify(EVENT))
    assert outcome["ops@example.com"].status is Status.DELIVERED
    assert (outcome["jörg@example.com"].kind, outcome["jörg@example.com"].reason) == (
        FailureKind.PERMANENT,
        NO_SMTPUTF8,
    )
    (data,) = server.data
    assert max(data) < 128
    assert b"\r\nTo: ops@example.com\r\n" in data  # never an empty To header
    assert b"\r\nCc:" not in data


async def test_without_smtputf8_a_non_ascii_sender_fails_everyone_and_says_so(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted()
    notifier = make_notifier(server.port, **{"from": "Jörg <jörg@example.com>"})

    (recipient,) = (await notifier.notify(EVENT)).recipients
    assert (recipient.status, recipient.kind, recipient.reason) == (
        Status.FAILED,
        FailureKind.PERMANENT,
        "the from or reply_to address has non-ASCII characters before the @, and the server "
        "does not support SMTPUTF8",
    )
    assert "MAIL" not in server.verbs


async def test_non_ascii_bcc_asks_for_smtputf8(scripted: Any, make_notifier: Any) -> None:
    server = await scripted(replies={"EHLO": "250-raw.test\r\n250-8BITMIME\r\n250 SMTPUTF8"})
    notifier = make_notifier(server.port, bcc=["jörg@example.com"])

    result = await notifier.notify(EVENT)
    assert [(r.recipient, r.status) for r in result.recipients] == [
        ("ops@example.com", Status.DELIVERED),
        ("jörg@example.com", Status.DELIVERED),
    ]
    assert server.commands[1] == "MAIL FROM:<dbackup@example.com> SMTPUTF8"
    assert server.commands[3] == "RCPT TO:<jörg@example.com>"
    (data,) = server.data
    assert b"j\xc3\xb6rg" not in data  # Bcc: in the envelope only


async def test_non_ascii_bcc_without_smtputf8_fails_alone(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted()
    notifier = make_notifier(server.port, bcc=["jörg@example.com"])

    outcome = by_recipient(await notifier.notify(EVENT))
    assert outcome["ops@example.com"].status is Status.DELIVERED
    assert outcome["jörg@example.com"].reason == NO_SMTPUTF8
    assert server.envelopes == [("dbackup@example.com", ("ops@example.com",))]


async def test_without_smtputf8_bcc_alone_left_gets_undisclosed_recipients(
    scripted: Any, make_notifier: Any
) -> None:
    server = await scripted()
    notifier = make_notifier(server.port, to=["jörg@example.com"], bcc=["ops@example.com"])

    outcome = by_recipient(await notifier.notify(EVENT))
    assert outcome["jörg@example.com"].reason == NO_SMTPUTF8
    assert outcome["ops@example.com"].status is Status.DELIVERED
    (data,) = server.data
    assert b"\r\nTo: undisclosed-recipients:;\r\n" in data
    assert b"ops@example.com" not in data
