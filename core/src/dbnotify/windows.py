"""Times of day in a time zone: quiet hours and digest times, as instants.

Pure functions of a rule and ``now`` (seconds since the epoch), so that tests inject the
clock. A window that crosses midnight (22:00 to 07:00) ends the next morning; a day on
which the clock changes (DST) keeps the wall-clock times, as people read them.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from dbnotify.config.model import DigestRule, QuietHours


def _clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def _at(day: dt.date, clock: dt.time, zone: zoneinfo.ZoneInfo) -> float:
    return dt.datetime.combine(day, clock, tzinfo=zone).timestamp()


def quiet_until(rule: QuietHours, now: float) -> float | None:
    """When the quiet window ``now`` falls in ends; ``None`` outside it (or for a window
    of no length, ``from`` equal to ``to``)."""
    zone = zoneinfo.ZoneInfo(rule.timezone)
    start, end = _clock(rule.from_), _clock(rule.to)
    if start == end:
        return None
    local = dt.datetime.fromtimestamp(now, zone)
    today = local.date()
    if start < end:  # within one day: 13:00 to 14:00
        if _at(today, start, zone) <= now < _at(today, end, zone):
            return _at(today, end, zone)
        return None
    # across midnight: 22:00 to 07:00
    if now >= _at(today, start, zone):
        return _at(today + dt.timedelta(days=1), end, zone)
    if now < _at(today, end, zone):
        return _at(today, end, zone)
    return None


def excepted(rule: QuietHours, event_type: str, severity: str) -> bool:
    """Whether a notification goes at once despite the quiet hours."""
    return event_type in rule.except_ or severity in rule.except_


def next_digest(rule: DigestRule, now: float) -> float:
    """The next time the digest goes: today at ``at``, or tomorrow if that has passed."""
    zone = zoneinfo.ZoneInfo(rule.timezone)
    today = dt.datetime.fromtimestamp(now, zone).date()
    at = _at(today, _clock(rule.at), zone)
    return at if at > now else _at(today + dt.timedelta(days=1), _clock(rule.at), zone)
