"""The channel's ``deadline``: the reason says whether the message could have arrived.

A message that ran out of time while waiting for a free connection, or behind another
message of the same notification, was never sent: its reason says "not sent", without
the "may or may not have arrived" of a message cut off in the middle of its transaction.
"""

from __future__ import annotations

from typing import Any

from dbnotify import Event, FailureKind, Notifier, RecipientResult, Status
from dbnotify_email import pool

SLOW = (
    "the server took longer than deadline = 1.5s in all",
    "the server answers too slowly (or keeps the connection busy); check it, or raise "
    "deadline; if the message was already being sent, it may or may not have arrived",
)


def notifier(port: int, **channel: Any) -> Notifier:
    """One email channel with ``deadline = 1.5`` (the channel's), well inside the core's."""
    block = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "dbackup@example.com",
        "to": ["ops@example.com"],
        "timeout": 5,
        "deadline": 1.5,
        **channel,
    }
    return Notifier.from_config(
        {
            "channels": {"mail": block},
            "routing": {"channels": ["mail"]},
            "dispatch": {"deadline": 10},
        }
    )


def failure(recipient: RecipientResult) -> tuple[str | None, str | None]:
    assert recipient.status is Status.FAILED
    assert recipient.kind is FailureKind.TRANSIENT
    return recipient.reason, recipient.hint


async def test_waiting_for_a_busy_connection_past_the_deadline_says_not_sent(
    scripted: Any,
) -> None:
    server = await scripted()
    mail = notifier(server.port, max_connections=1)
    # the channel's one connection is busy (here held by the test) for longer than the
    # deadline: the notification waits for it, and its time runs out
    async with mail, pool.pool_for(mail.config.channels["mail"].config).session():
        result = await mail.notify(Event("backup_success", {"job_name": "nightly"}))

    assert failure(result.recipients[0]) == (
        "not sent: every connection to 127.0.0.1 that max_connections = 1 allows stayed "
        "busy with other notifications past deadline = 1.5s",
        "more notifications at once than the server takes in that time; raise "
        "max_connections or deadline, or add an [outbox] so that the rest is retried",
    )
    assert "MAIL" not in server.verbs  # only the held connection's EHLO (and its QUIT)


async def test_per_recipient_messages_left_at_the_deadline_say_not_sent(
    scripted: Any,
) -> None:
    server = await scripted(delay=0.4)
    async with notifier(
        server.port, to=["a@example.com", "b@example.com"], per_recipient=True
    ) as mail:
        result = await mail.notify(Event("backup_success", {"job_name": "nightly"}))

    first, second = result.recipients
    assert (first.recipient, second.recipient) == ("a@example.com", "b@example.com")
    assert failure(first) == SLOW
    assert failure(second) == (
        "not sent: deadline = 1.5s passed before its turn (one message per recipient, "
        "one after another)",
        "the server answers too slowly for per_recipient; check it, or raise deadline",
    )
    assert server.verbs.count("MAIL") == 1  # b's message never started
