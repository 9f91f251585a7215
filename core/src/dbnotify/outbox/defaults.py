"""The worker's defaults, in a module light enough for ``dbnotify worker --help``."""

POLL = 1.0
"""Seconds between looks for new work when idle."""

CONCURRENCY = 32
"""Attempts in flight at once, by default: each from its claim until its record is
committed. 32, not 16: an attempt holds its slot while its record waits for the group
commit, and with 16 the event loop sat idle for about a fifth of a burst (measured in
docs/performance.md). It also bounds what a crash can duplicate: sent, not recorded."""

STOP_GRACE = 10.0
"""Seconds a stopping worker (SIGTERM) lets its attempts in flight finish before it gives
their leases back: within the 10 s that ``docker stop`` waits by default before it
kills."""

FALLBACK_QUIET = 3600.0
"""Seconds a worker waits before it tells a channel's fallback again that the channel was
parked, or gave a delivery up (once it delivers again, the next failure is told at once)."""

GROUP_LIMIT = 1000
"""The most deliveries one group's message carries; the rest go in the next."""
