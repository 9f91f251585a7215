"""What the CLI and the HTTP API both ask of an outbox, checked the same way: the
history's time filters, and whether what a retry names exists.

Each check raises with the words of the problem only; the caller adds its own way out
(a command line option, an API path) and its own exit (exit 2, a 404).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from dbnotify.outbox.store import OutboxStore

TIME_EXAMPLE = "2026-11-24T05:00:00Z"


def parse_time(value: str) -> float:
    """An ISO 8601 time as seconds since the epoch; UTC when it names no zone.
    Raises :class:`ValueError` saying what it must be."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be ISO 8601, e.g. {TIME_EXAMPLE} (got {value!r})") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


class RetryTargetMissing(LookupError):
    """What a retry names is in neither the configuration nor the outbox."""

    def __init__(self, field: str, value: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        """``delivery_id`` or ``channel``."""
        self.value = value
        self.message = message


async def check_retry_target(
    store: OutboxStore,
    configured: Collection[str],
    *,
    delivery_id: int | None,
    channel: str | None,
    where: str = "the configuration",
) -> None:
    """Raise :class:`RetryTargetMissing` when delivery ``delivery_id`` is not in the
    outbox, or ``channel`` is neither configured (in ``where``) nor in the outbox's
    history (a channel removed from the file may still have dead deliveries to retry)."""
    if delivery_id is not None and not await store.history(delivery_ids=[delivery_id]):
        raise RetryTargetMissing(
            "delivery_id", str(delivery_id), f"no delivery #{delivery_id} in the outbox"
        )
    if (
        channel is not None
        and channel not in configured
        and not await store.history(channel=channel, limit=1)
    ):
        raise RetryTargetMissing(
            "channel",
            channel,
            f"no channel named {channel!r} in {where} or in the outbox "
            f"(configured: {', '.join(configured) or 'none'})",
        )
