"""Group commit: writes that arrive together share one transaction, and one fsync.

With ``synchronous = FULL`` every commit waits for the disk, so a commit per notification
caps durable mode at the disk's fsync rate. Callers still hear of their own commit (a
notification is durable when :meth:`Notifier.notify` returns; an attempt's slot is free
once its record is committed); they only share it. While
one transaction is being written, new writes gather for the next. When a shared
transaction fails, each write is tried again on its own, so that a write that cannot be
stored fails alone and with its own reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


class Waiter(Protocol[R_contra]):
    """Who learns what one write was committed as: an :class:`asyncio.Future` for a
    caller that awaits it (``notify()``), or an object that acts at once (the worker's
    records: no future, no task to wake, a loop callback less a write)."""

    def done(self) -> bool:
        """True when nobody waits any more (a cancelled caller): the write stands."""
        ...

    def set_result(self, result: R_contra, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class GroupCommit(Generic[T, R]):
    """Awaits ``write_many(items)`` (a store's ``enqueue_many``, ``record_many``) for
    everything submitted: one call at a time, with all that arrived meanwhile, at most
    ``limit`` items a call (the store's :attr:`~dbnotify.outbox.store.OutboxStore.write_group`).

    Bound to the event loop of its first :meth:`submit`; make one per loop.
    """

    def __init__(
        self, write_many: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, limit: int
    ) -> None:
        self._write_many = write_many
        self._limit = limit
        self._waiting: list[tuple[T, Waiter[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    def submit(self, item: T, waiter: Waiter[R]) -> None:
        """Write ``item`` with what else arrives; ``waiter`` learns what it was committed
        as, once it is (or what writing it raised)."""
        self._waiting.append((item, waiter))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
            try:
                results = await self._write_many([item for item, _ in group])
            except Exception as exc:  # noqa: BLE001 - handed to each waiting caller
                if len(group) == 1:
                    _settle(group[0][1], exc=exc)
                    continue
                for item, waiter in group:  # alone, each fails (or not) for its own reason
                    try:
                        (result,) = await self._write_many([item])
                    except Exception as one:  # noqa: BLE001 - handed to its caller
                        _settle(waiter, exc=one)
                    else:
                        _settle(waiter, result)
                continue
            for (_, waiter), result in zip(group, results, strict=True):
                _settle(waiter, result)


def _settle(waiter: Waiter[R], result: R | None = None, *, exc: Exception | None = None) -> None:
    if waiter.done():  # the caller was cancelled: the write stands, nobody waits for it
        return
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(result)  # type: ignore[arg-type]
