"""How long, and how often, a notification is worth retrying.

An MTA keeps trying for days because a letter stays worth delivering. A notification
does not: a login alert is worthless after an hour, while a backup failure still
matters the next day. So the limits are per event type, with exponential backoff and
jitter (so that many queued notifications do not return to a recovering server at the
same instant).
"""

from __future__ import annotations

import random

import attrs

from dbnotify.config.model import RetryOverride

HOUR = 3600.0
DAY = 86400.0


@attrs.frozen
class RetryPolicy:
    attempts: int
    first_delay: float
    max_delay: float
    max_age: float

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling
        from ``first_delay`` up to ``max_delay``, then a random 50-100% of that."""
        base: float = min(self.max_delay, self.first_delay * 2.0 ** max(0, attempt - 1))
        return base * (0.5 + (rng or random).random() / 2)


BUILTIN: dict[str, RetryPolicy] = {
    "default": RetryPolicy(attempts=8, first_delay=30, max_delay=HOUR, max_age=DAY),
    "backup_failure": RetryPolicy(attempts=12, first_delay=30, max_delay=HOUR, max_age=2 * DAY),
    "restore_failure": RetryPolicy(attempts=12, first_delay=30, max_delay=HOUR, max_age=2 * DAY),
    "system_error": RetryPolicy(attempts=12, first_delay=30, max_delay=HOUR, max_age=2 * DAY),
    "user_login": RetryPolicy(attempts=5, first_delay=15, max_delay=600, max_age=HOUR),
    "user_created": RetryPolicy(attempts=6, first_delay=30, max_delay=1800, max_age=6 * HOUR),
    "test": RetryPolicy(attempts=3, first_delay=10, max_delay=60, max_age=600),
}


def _apply(policy: RetryPolicy, override: RetryOverride | None) -> RetryPolicy:
    if override is None:
        return policy
    changes = {
        name: getattr(override, name)
        for name in ("attempts", "first_delay", "max_delay", "max_age")
        if getattr(override, name) is not None
    }
    return attrs.evolve(policy, **changes)


def policy_for(event_type: str, overrides: dict[str, RetryOverride]) -> RetryPolicy:
    """The built-in policy of the event type, then ``retry.default``, then its own."""
    policy = BUILTIN.get(event_type, BUILTIN["default"])
    return _apply(_apply(policy, overrides.get("default")), overrides.get(event_type))
