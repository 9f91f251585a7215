"""Scenario 5: the CPU time to turn a notification into the bytes that go over SMTP.

Only calls that outlive a rewrite of the email plugin's internals:
``dbnotify_email.plugin.outgoing(config, notification, renderer)`` (render + MIME, what
the plugin's ``send`` does before talking to the server) and the renderer's
``subject``/``text``/``html``. The MIME share is derived: outgoing minus rendering.

Each repeat uses notifications of its own (new ids, distinct content), so that nothing
cached for one pass can serve the next. The garbage collector stays on, as in a host.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from email.policy import SMTP
from typing import TypeVar

from bench.workload import Content, mixed_notifications, naive_message, throughput_config
from dbnotify import load_config
from dbnotify.events import Notification
from dbnotify.rendering import Renderer
from dbnotify_email.plugin import outgoing


@dataclasses.dataclass
class BuildCost:
    """Milliseconds per message, medians over the repeats."""

    outgoing_ms: float
    render_ms: float
    naive_ms: float
    messages: int
    repeats: int
    outgoing_bytes: int
    naive_bytes: int

    @property
    def mime_ms(self) -> float:
        return self.outgoing_ms - self.render_ms


T = TypeVar("T")


def _per_message_ms(items: Sequence[T], work: Callable[[T], object]) -> float:
    started = time.perf_counter_ns()
    for item in items:
        work(item)
    return (time.perf_counter_ns() - started) / len(items) / 1e6


def measure(messages: int, repeats: int) -> BuildCost:
    config = load_config(throughput_config(25))
    email = config.channels["ops-mail"].config
    renderer = Renderer(config.rendering)
    serial = iter(range(10**9))

    def fresh() -> list[Notification]:
        return mixed_notifications(messages, start=next(serial) * messages)

    def render(n: Notification) -> Content:
        return Content(renderer.subject(n), renderer.text(n), renderer.html(n))

    def build(n: Notification) -> object:
        return outgoing(email, n, renderer)

    def naive(item: tuple[int, Content]) -> bytes:
        number, content = item
        return naive_message(content, number).as_bytes(policy=SMTP)

    for n in fresh()[:20]:  # warm-up: first calls pay for lazy imports
        build(n)
        naive((0, render(n)))
    outgoing_ms, render_ms, naive_ms = [], [], []
    for _ in range(repeats):
        outgoing_ms.append(_per_message_ms(fresh(), build))
        render_ms.append(_per_message_ms(fresh(), render))
        contents = [(i, render(n)) for i, n in enumerate(fresh())]
        naive_ms.append(_per_message_ms(contents, naive))
    sample = fresh()[0]
    return BuildCost(
        outgoing_ms=statistics.median(outgoing_ms),
        render_ms=statistics.median(render_ms),
        naive_ms=statistics.median(naive_ms),
        messages=messages,
        repeats=repeats,
        outgoing_bytes=len(outgoing(email, sample, renderer)[0].data),
        naive_bytes=len(naive((0, render(sample)))),
    )


def message_sizes() -> tuple[int, int]:
    """Bytes of dbnotify's message and of the baselines' message, for the same event."""
    config = load_config(throughput_config(25))
    renderer = Renderer(config.rendering)
    sample = mixed_notifications(1)[0]
    ours = len(outgoing(config.channels["ops-mail"].config, sample, renderer)[0].data)
    theirs = len(naive_message(Content.sample(), 0).as_bytes(policy=SMTP))
    return ours, theirs
