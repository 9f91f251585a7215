"""Quiet hours and digest times as instants, with the clock passed in."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from dbnotify.config.model import DigestRule, QuietHours
from dbnotify.windows import excepted, next_digest, quiet_until

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def at(text: str, zone: zoneinfo.ZoneInfo = BERLIN) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


NIGHT = QuietHours(from_="22:00", to="07:00", timezone="Europe/Berlin", except_=("failure",))


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-12-04 21:59:59", None),
        ("2026-12-04 22:00:00", "2026-12-05 07:00:00"),
        ("2026-12-04 23:30:00", "2026-12-05 07:00:00"),
        ("2026-12-05 06:59:59", "2026-12-05 07:00:00"),
        ("2026-12-05 07:00:00", None),
        ("2026-12-05 12:00:00", None),
        # the night the clocks go back: the window still ends at 07:00 on the wall
        ("2026-10-24 23:00:00", "2026-10-25 07:00:00"),
    ],
)
def test_a_window_across_midnight(now: str, until: str | None) -> None:
    assert quiet_until(NIGHT, at(now)) == (at(until) if until else None)


def test_a_window_within_a_day_and_one_of_no_length() -> None:
    lunch = QuietHours(from_="12:00", to="13:00")
    utc = zoneinfo.ZoneInfo("UTC")
    assert quiet_until(lunch, at("2026-12-04 12:30:00", utc)) == at("2026-12-04 13:00:00", utc)
    assert quiet_until(lunch, at("2026-12-04 13:00:00", utc)) is None
    assert quiet_until(QuietHours(from_="12:00", to="12:00"), at("2026-12-04 12:00:00")) is None


def test_except_names_severities_or_event_types() -> None:
    assert excepted(NIGHT, "backup_failure", "failure")
    assert not excepted(NIGHT, "backup_success", "success")
    assert excepted(
        QuietHours(from_="22:00", to="07:00", except_=("user_login",)), "user_login", "info"
    )


def test_the_next_digest_is_today_or_tomorrow() -> None:
    daily = DigestRule(
        channels=("m",), events=("backup_success",), at="08:00", timezone="Europe/Berlin"
    )
    assert next_digest(daily, at("2026-12-04 07:00:00")) == at("2026-12-04 08:00:00")
    assert next_digest(daily, at("2026-12-04 08:00:00")) == at("2026-12-05 08:00:00")
    assert next_digest(daily, at("2026-12-04 09:00:00")) == at("2026-12-05 08:00:00")
