"""Retry policy: exponential backoff with jitter, limits per event type, and their config."""

from __future__ import annotations

import random
import statistics

import attrs
import pytest

from dbnotify import ConfigError, load_config
from dbnotify.config.model import RetryOverride
from dbnotify.outbox.policy import BUILTIN, DAY, HOUR, RetryPolicy, policy_for


class FixedRandom(random.Random):
    """An rng whose ``random()`` is always ``value``: the jitter's extremes."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


LOWEST, HIGHEST = FixedRandom(0.0), FixedRandom(1.0)


def test_backoff_doubles_from_first_delay_up_to_max_delay() -> None:
    policy = RetryPolicy(attempts=12, first_delay=30, max_delay=HOUR, max_age=DAY)
    ceilings = [policy.delay(n, HIGHEST) for n in range(1, 10)]
    assert ceilings == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_jitter_is_between_half_and_all_of_the_backoff() -> None:
    policy = RetryPolicy(attempts=8, first_delay=10, max_delay=600, max_age=DAY)
    for attempt in range(1, 10):
        base = min(600.0, 10.0 * 2 ** (attempt - 1))
        assert policy.delay(attempt, LOWEST) == base / 2
        draws = [policy.delay(attempt, random.Random(seed)) for seed in range(200)]
        assert all(base / 2 <= d <= base for d in draws)
        # spread over the whole range: queued notifications do not return together
        assert len(set(draws)) == 200
        assert max(draws) - min(draws) > 0.4 * base
        assert statistics.pstdev(draws) > 0.1 * base


def test_without_an_rng_the_jitter_is_random() -> None:
    policy = RetryPolicy(attempts=8, first_delay=10, max_delay=600, max_age=DAY)
    assert len({policy.delay(3) for _ in range(50)}) > 40


def test_attempt_zero_or_one_waits_first_delay() -> None:
    policy = RetryPolicy(attempts=8, first_delay=10, max_delay=600, max_age=DAY)
    assert policy.delay(0, HIGHEST) == policy.delay(1, HIGHEST) == 10


# --- per event type --------------------------------------------------------------------------


def test_builtin_limits_follow_what_each_event_is_worth() -> None:
    # a login alert is worthless after an hour; a backup failure still matters tomorrow
    assert policy_for("user_login", {}).max_age == HOUR
    assert policy_for("backup_failure", {}).max_age == 2 * DAY
    assert policy_for("user_created", {}).max_age == 6 * HOUR
    assert policy_for("test", {}).max_age == 600
    assert policy_for("no_such_event", {}) == BUILTIN["default"]
    assert policy_for("backup_failure", {}).attempts > policy_for("user_login", {}).attempts


def test_overrides_default_then_own_each_key_alone() -> None:
    overrides = {
        "default": RetryOverride(first_delay=1.0, max_delay=8.0),
        "user_login": RetryOverride(max_age=120.0, first_delay=2.0),
    }
    assert policy_for("user_login", overrides) == RetryPolicy(
        attempts=BUILTIN["user_login"].attempts, first_delay=2.0, max_delay=8.0, max_age=120.0
    )
    assert policy_for("backup_failure", overrides) == attrs.evolve(
        BUILTIN["backup_failure"], first_delay=1.0, max_delay=8.0
    )
    assert policy_for("custom_event", overrides) == attrs.evolve(
        BUILTIN["default"], first_delay=1.0, max_delay=8.0
    )


def test_outbox_retry_tables_in_the_configuration(tmp_path) -> None:
    config = load_config(
        {
            "channels": {},
            "outbox": {
                "path": str(tmp_path / "outbox.sqlite"),
                "busy_timeout": 0.5,
                "retry": {
                    "default": {"first_delay": "0.2s", "max_delay": "1s"},
                    "user_login": {"max_age": "10m", "attempts": 3},
                    "backup_failure": {"max_age": "2d"},
                },
            },
        }
    )
    assert config.outbox is not None
    assert config.outbox.busy_timeout == 0.5
    retry = config.outbox.retry
    assert policy_for("user_login", retry) == RetryPolicy(3, 0.2, 1.0, 600.0)
    assert policy_for("backup_failure", retry) == RetryPolicy(
        BUILTIN["backup_failure"].attempts, 0.2, 1.0, 2 * DAY
    )
    assert policy_for("system_error", retry).max_age == 2 * DAY  # the built-in, kept


def test_outbox_configuration_errors_are_all_reported_with_paths(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "channels": {},
                "outbox": {
                    "path": str(tmp_path / "missing" / "outbox.sqlite"),
                    "busy_timeout": 0,
                    "retry": {
                        "user_login": {"max_age": "soon", "attempts": 0, "first_dely": "1s"},
                        "default": {"max_delay": -3},
                    },
                },
            }
        )
    assert sorted(str(i) for i in info.value.issues) == sorted(
        [
            f"outbox.path: folder {str(tmp_path / 'missing')!r} does not exist; create it, "
            "or choose another path",
            "outbox.busy_timeout: must be greater than 0 (got 0.0)",
            "outbox.retry.user_login.first_dely: unknown key; did you mean 'first_delay'?",
            "outbox.retry.user_login.attempts: must be between 1 and 1000 (got 0)",
            'outbox.retry.user_login.max_age: must be seconds, or a duration such as "30s", '
            '"5m", "1h", "2d" (got \'soon\')',
            "outbox.retry.default.max_delay: must be more than 0 seconds (got -3)",
        ]
    )
