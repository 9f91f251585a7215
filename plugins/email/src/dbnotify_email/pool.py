"""Connection reuse: notifications sent together to one server share connections.

A pool per channel configuration and event loop keeps a few open sessions for a short
while (``KEEPALIVE`` seconds). A session that went stale while idle is noticed at MAIL
FROM, before anything was sent, and replaced. A reaper task closes idle sessions; when
the loop shuts down and cancels it, it closes them all, so nothing is left open.

At most ``max_connections`` messages hold a connection at once; the others wait in line.
Where the server pipelines, a message ending its DATA takes the first in line with it
(:class:`~dbnotify_email.session.Handoff`): that message's MAIL, RCPT and DATA go out
with the end of data, and it gets the connection straight after, without a round trip
of its own for them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
import weakref
from collections.abc import AsyncIterator, Callable

import attrs

from dbnotify_email.outgoing import Outgoing
from dbnotify_email.session import Handoff, Session, open_session
from dbnotify_email.settings import EmailConfig

KEEPALIVE = 5.0
"""Seconds an idle connection is kept; servers commonly drop idle clients after 60+."""
AHEAD = 2
"""Messages waiting in line per connection, at most; the rest of a burst waits before it is
rendered (:meth:`Pool.turn`). Two keep a next message ready for every connection's end
of data, and rendering the rest later keeps it from holding up replies already on their
way: with 400 notifications at once through a 50 ms round trip, rendering all of them
first delayed every connection's greeting by 0.35 s (more on a busy machine)."""
CHAIN = True
"""Send the next message's first commands with this one's end of data where the server
pipelines. Off: each message waits for its own MAIL, RCPT and DATA replies (two round
trips a message), as before; the bench turns it off to measure what it saves."""


@attrs.define(eq=False)
class _Waiter:
    """A message waiting for a connection: a slot alone (None), or a connection with the
    message's first commands already written (a :class:`Handoff`)."""

    message: Outgoing | None
    """None: not to be taken along (a retry on a fresh connection)."""
    got: asyncio.Future[Session | None]


@attrs.define(eq=False)
class _Lease:
    handed: bool = False
    """The connection, and the slot with it, went to the next message."""


@attrs.define
class Pool:
    config: EmailConfig
    _idle: list[Session] = attrs.field(factory=list)
    _free: int = attrs.field(init=False)
    """Slots no message holds: at most ``max_connections`` hold one."""
    _waiting: collections.deque[_Waiter] = attrs.field(factory=collections.deque)
    _turns: collections.deque[asyncio.Future[None]] = attrs.field(factory=collections.deque)
    """Notifications waiting for the line to get short (:meth:`turn`)."""
    _reaper: asyncio.Task[None] | None = None

    def __attrs_post_init__(self) -> None:
        self._free = self.config.max_connections

    async def turn(self) -> None:
        """Return when the line for a connection is short.

        A notification calls it before rendering its messages, so that a burst is
        rendered a few at a time while the first messages are on the wire. No timer of
        its own: the caller waits under its deadline (a timer a message is a few µs, and
        a burst holds thousands in the loop's heap), and a wait it cancels is skipped.
        """
        while len(self._waiting) >= AHEAD * self.config.max_connections:
            ready = asyncio.get_running_loop().create_future()
            self._turns.append(ready)
            await ready

    def _left_line(self) -> None:
        """A message left the line: the first notification waiting for its turn goes on."""
        while self._turns:
            ready = self._turns.popleft()
            if not ready.done():
                ready.set_result(None)
                return

    @contextlib.asynccontextmanager
    async def session(
        self,
        *,
        fresh: bool = False,
        on_slot: Callable[[], None] | None = None,
        message: Outgoing | None = None,
    ) -> AsyncIterator[tuple[Session, bool]]:
        """A ready session and whether it was reused; put back if still good.

        ``on_slot`` is called when a connection is free for it: until then, nothing of
        the message has gone anywhere (the caller's failure reason says so). ``message``
        is what will be sent first: where the server pipelines, the message before it on
        a connection may send its first commands (see the module's docstring).
        """
        handed = await self._slot(None if fresh else message)
        lease = _Lease()
        session: Session | None = None
        try:
            if on_slot is not None:
                on_slot()
            session = handed
            if session is None and not fresh:
                session = self._take()
            reused = session is not None
            if session is None:
                session = await open_session(self.config)
            if CHAIN:
                session.next_in_line = lambda: self._claim(lease)
            try:
                yield session, reused
            except BaseException:
                session.broken = True
                raise
        finally:
            if not lease.handed:
                try:
                    if session is not None:
                        session.next_in_line = None
                        if session.usable:
                            session.last_used = time.monotonic()
                            self._idle.append(session)
                            self._ensure_reaper()
                        else:
                            await session.close()
                finally:
                    self._release()

    async def _slot(self, message: Outgoing | None) -> Session | None:
        """Wait for a slot; a connection comes with it when handed over."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return None
        waiter = _Waiter(message, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            return await waiter.got
        except BaseException:  # cancelled (a deadline)
            if waiter in self._waiting:
                self._waiting.remove(waiter)
                self._left_line()
            elif waiter.got.done() and not waiter.got.cancelled():
                # given a slot just now: give it back; a connection with this message's
                # commands in it cannot go on without this message
                session = waiter.got.result()
                if session is not None:
                    session.broken = True
                    session.smtp.close()
                self._release()
            raise

    def _release(self) -> None:
        """The slot goes to the first in line, or back to the free ones."""
        while self._waiting:
            waiter = self._waiting.popleft()
            self._left_line()
            if not waiter.got.done():
                waiter.got.set_result(None)
                return
        self._free += 1

    def _claim(self, lease: _Lease) -> Handoff | None:
        """The first message in line that may be taken along, out of the line."""
        for waiter in self._waiting:
            if waiter.message is not None and not waiter.got.done():
                self._waiting.remove(waiter)
                self._left_line()
                return Handoff(waiter.message, functools.partial(self._give, lease, waiter))
        return None

    def _give(self, lease: _Lease, waiter: _Waiter, session: Session) -> None:
        """Hand the connection (and its slot) to the claimed message."""
        lease.handed = True
        session.next_in_line = None
        if waiter.got.cancelled():  # its deadline ran out: its commands are on the wire
            session.broken = True
            session.smtp.close()
            self._release()
        elif session.usable:
            waiter.got.set_result(session)
        else:  # the connection failed: nothing of the claimed message was delivered
            session.smtp.close()
            waiter.got.set_result(None)

    def _take(self) -> Session | None:
        now = time.monotonic()
        while self._idle:
            session = self._idle.pop()
            if session.usable and now - session.last_used < KEEPALIVE:
                return session
            session.smtp.close()
        return None

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        try:
            while self._idle:
                await asyncio.sleep(KEEPALIVE / 2)
                now = time.monotonic()
                for session in [s for s in self._idle if now - s.last_used >= KEEPALIVE]:
                    self._idle.remove(session)
                    await session.close()
        finally:
            for session in self._idle:
                session.smtp.close()
            self._idle.clear()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(s.close() for s in idle))
        if self._reaper is not None and not self._reaper.done():
            self._reaper.cancel()


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[EmailConfig, Pool]] = (
    weakref.WeakKeyDictionary()
)


def pool_for(config: EmailConfig) -> Pool:
    loop = asyncio.get_running_loop()
    pools = _pools.get(loop)  # not setdefault: no dict and weak reference made per call
    if pools is None:
        pools = _pools[loop] = {}
    pool = pools.get(config)
    if pool is None:
        pool = pools[config] = Pool(config)
    return pool


async def close_all() -> None:
    """Close this loop's pooled connections (politely)."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    await asyncio.gather(*(p.close() for p in pools.values()))
