"""Connection reuse: notifications sent together to one server share connections.

A pool per channel configuration and event loop keeps a few open sessions for a short
while (``KEEPALIVE`` seconds). A session that went stale while idle is noticed at MAIL
FROM, before anything was sent, and replaced. A reaper task closes idle sessions; when
the loop shuts down and cancels it, it closes them all, so nothing is left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable

import attrs

from dbnotify_email.session import Session, open_session
from dbnotify_email.settings import EmailConfig

KEEPALIVE = 5.0
"""Seconds an idle connection is kept; servers commonly drop idle clients after 60+."""


@attrs.define
class Pool:
    config: EmailConfig
    _idle: list[Session] = attrs.field(factory=list)
    _slots: asyncio.Semaphore = attrs.field(init=False)
    _reaper: asyncio.Task[None] | None = None

    def __attrs_post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.config.max_connections)

    @contextlib.asynccontextmanager
    async def session(
        self, *, fresh: bool = False, on_slot: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[Session, bool]]:
        """A ready session and whether it was reused; put back if still good.

        ``on_slot`` is called when a connection is free for it: until then, nothing of
        the message has gone anywhere (the caller's failure reason says so).
        """
        async with self._slots:
            if on_slot is not None:
                on_slot()
            session = None if fresh else self._take()
            reused = session is not None
            if session is None:
                session = await open_session(self.config)
            try:
                yield session, reused
            except BaseException:
                session.broken = True
                raise
            finally:
                if session.usable:
                    session.last_used = time.monotonic()
                    self._idle.append(session)
                    self._ensure_reaper()
                else:
                    await session.close()

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
    pools = _pools.setdefault(asyncio.get_running_loop(), {})
    pool = pools.get(config)
    if pool is None:
        pool = pools[config] = Pool(config)
    return pool


async def close_all() -> None:
    """Close this loop's pooled connections (politely)."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    await asyncio.gather(*(p.close() for p in pools.values()))
