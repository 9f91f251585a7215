"""The worker's defaults, in a module light enough for ``dbnotify worker --help``."""

POLL = 1.0
"""Seconds between looks for new work when idle."""

CONCURRENCY = 64
"""Attempts in flight at once, by default: each from its claim until its record is
committed. An attempt holds its slot while its record waits for the group commit, so
the slots must cover that wait: with 16 the event loop sat idle for about a fifth of a
burst; with 32, once rendering got three times faster (issue 16), the sends outran the
records again, and 64 raised durable mode's share of direct from 62 to 66 % on SQLite
and from 38 to 50 % with one worker on PostgreSQL (docs/performance.md). It also bounds
what a crash can duplicate: sent, not recorded. A store may ask for another number
(:attr:`~dbnotify.outbox.store.OutboxStore.worker_concurrency`)."""

POSTGRES_CONCURRENCY = 128
"""The same on PostgreSQL, whose records wait for the network and the server's commit:
with 64, one worker spent about an eighth of a burst with 48-56 of its slots held by
attempts waiting for their record and no claim allowed (it claims once half are free),
and a tenth waiting for a claim; 128 raised one worker's share of direct mode by 3-4
points (docs/performance.md). A crash can duplicate up to 128."""

WRITE_GROUP = 500
"""The most writes (notifications, attempts) one group commit puts in a transaction, by
default: a burst takes few transactions where each costs the host's loop its work. A
store may ask for another number
(:attr:`~dbnotify.outbox.store.OutboxStore.write_group`)."""

STOP_GRACE = 10.0
"""Seconds a stopping worker (SIGTERM) lets its attempts in flight finish before it gives
their leases back: within the 10 s that ``docker stop`` waits by default before it
kills."""

FALLBACK_QUIET = 3600.0
"""Seconds a worker waits before it tells a channel's fallback again that the channel was
parked, or gave a delivery up (once it delivers again, the next failure is told at once)."""

GROUP_LIMIT = 1000
"""The most deliveries one group's message carries; the rest go in the next."""
