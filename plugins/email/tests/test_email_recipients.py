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
