"""Random ids for notifications: 32 hex digits, 128 bits from the OS's CSPRNG.

``uuid.uuid4().hex`` asks the kernel for 16 bytes each time (a ``getrandom`` call: 0.3
µs alone, about 5 µs on the clock inside a burst) and builds a UUID object in Python.
These come from a buffer filled 256 ids at a time, from the same source; with the MIME
boundary's (``dbnotify_email.message``), 1-2 % of direct mode's CPU. A forked child
starts with a buffer of its own, never its parent's ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

ID_BYTES = 16
BATCH = 256
"""Ids drawn from one read of ``os.urandom``."""


def _fresh() -> Iterator[str]:
    pool = os.urandom(ID_BYTES * BATCH).hex()
    width = 2 * ID_BYTES
    return iter([pool[i : i + width] for i in range(0, len(pool), width)])


_ids: Iterator[str] = iter(())


def new_id() -> str:
    """A new random id. Thread-safe: ``next()`` on a list's iterator hands each item out
    once, whichever thread asks (two threads that find it empty each start a new one)."""
    global _ids
    found = next(_ids, None)
    if found is None:
        _ids = _fresh()
        found = next(_ids)
    return found


def _forget() -> None:
    global _ids
    _ids = iter(())


os.register_at_fork(after_in_child=_forget)
