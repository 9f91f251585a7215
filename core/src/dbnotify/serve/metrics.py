"""What ``/metrics`` shows, in Prometheus's text format (``prometheus-client``).

Counters count what this process did since it started (Prometheus's ``rate()`` copes
with a restart): events accepted, and every delivery attempt its worker (or, without an
outbox, its requests) made, by channel and outcome. Gauges are read from the outbox at
each scrape, so that they say what every worker sharing the outbox left: deliveries
pending and due, recipients dead, parked channels.

Each application has a registry of its own, never the library's global one: two apps in
one process (tests) count apart, and nothing else registered in the process leaks out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import choose_encoder

from dbnotify.delivery import Deliverer
from dbnotify.events import CATALOGUE, Notification
from dbnotify.outbox.model import Counts, Parked
from dbnotify.results import ChannelResult, Delivery, DispatchResult, Status

__all__ = ["CountingDeliverer", "ServeMetrics"]

OTHER_EVENT = "other"
"""The ``event_type`` label of an event type outside the catalogue: a host may send any
name, and each would be a time series of its own."""


OUTCOMES = tuple(s.value for s in (Status.DELIVERED, Status.FAILED, Status.SKIPPED))
"""The ``outcome`` label of ``dbnotify_deliveries_total``: each recipient's."""


class ServeMetrics:
    """The counters and gauges of one running application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted = Counter(
            "dbnotify_notifications_accepted",
            "Events accepted by POST /v1/events (event types outside the catalogue: other)",
            ["event_type"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "dbnotify_deliveries",
            "Recipients' outcomes of the delivery attempts this process made (a group's "
            "message counts once)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "dbnotify_outbox_pending",
            "Deliveries waiting in the outbox (parked channels' left out)",
            registry=self.registry,
        )
        self.due = Gauge(
            "dbnotify_outbox_due",
            "Deliveries of the outbox due now",
            registry=self.registry,
        )
        self.dead = Gauge(
            "dbnotify_outbox_dead",
            "Recipients the outbox gave up on (dead letters: POST /v1/outbox/retry)",
            registry=self.registry,
        )
        self.parked = Gauge(
            "dbnotify_channel_parked",
            "1 for each channel whose queue is parked (bad credentials, ...)",
            ["channel"],
            registry=self.registry,
        )
        self.parked_count = Gauge(
            "dbnotify_outbox_parked_channels",
            "How many channels are parked",
            registry=self.registry,
        )
        self.outbox_up = Gauge(
            "dbnotify_outbox_up",
            "1 when the outbox answered this scrape, 0 when it did not (or there is none)",
            registry=self.registry,
        )
        for event_type in (*CATALOGUE, OTHER_EVENT):  # at 0 from the start: rate() sees
            self.accepted.labels(event_type)  # the first one, not only the second

    def channels(self, names: Iterable[str]) -> None:
        """Start each channel's delivery counters at 0 (a reload may add channels)."""
        for name in names:
            for outcome in OUTCOMES:
                self.deliveries.labels(name, outcome)

    def count_accepted(self, result: DispatchResult) -> None:
        label = result.event_type if result.event_type in CATALOGUE else OTHER_EVENT
        self.accepted.labels(label).inc()

    def count_delivery(self, result: ChannelResult) -> None:
        for recipient in result.recipients:
            self.deliveries.labels(result.channel, recipient.status.value).inc()

    def outbox_state(self, counts: Counts | None, parked: dict[str, Parked]) -> None:
        """The gauges from the outbox's answer; ``None``: it did not answer."""
        self.outbox_up.set(1 if counts is not None else 0)
        if counts is None:
            return
        self.pending.set(counts["pending"])
        self.due.set(counts["due"])
        self.dead.set(counts["dead"])
        self.parked.clear()
        for channel in parked:
            self.parked.labels(channel).set(1)
        self.parked_count.set(len(parked))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics, and their content type, in the format the scraper asks for
        (``Accept``): Prometheus's text format, or OpenMetrics."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


@attrs.frozen
class CountingDeliverer(Deliverer):
    """The notifier's deliverer, telling :class:`ServeMetrics` of every outcome: the
    worker and direct mode both deliver through it, so both are counted."""

    observe: Callable[[ChannelResult], None] = attrs.field(kw_only=True, repr=False)

    @classmethod
    def around(
        cls, deliverer: Deliverer, observe: Callable[[ChannelResult], None]
    ) -> CountingDeliverer:
        return cls(deliverer.config, deliverer.plugins, deliverer.renderer, observe=observe)

    async def deliver(
        self,
        delivery: Delivery,
        notification: Notification,
        *,
        retry_only: tuple[str, ...] | None = None,
    ) -> ChannelResult:
        result = await super().deliver(delivery, notification, retry_only=retry_only)
        self.observe(result)
        return result
