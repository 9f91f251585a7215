"""Human units for sizes, durations and counts (DBackup showed raw seconds and bytes)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(num_bytes: float) -> str:
    """``1610612736`` -> ``1.5 GiB``."""
    value = float(num_bytes)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in _UNITS[1:]:
        value /= 1024
        # Compare what will be shown: 1048575 B is "1 MiB", not "1024 KiB".
        if abs(round(value, 1)) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    raise AssertionError("unreachable")


def duration(milliseconds: float) -> str:
    """``150000`` -> ``2m 30s``; under a second -> ``850 ms``."""
    ms = float(milliseconds)
    if ms < 999.5:  # what rounds to 1000 ms reads "1s"
        return f"{round(ms)} ms"
    seconds = int(ms / 1000 + 0.5)  # half up: 2500 -> 3s, like 3500 -> 4s
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return " ".join(parts)


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 delivery``, ``2 deliveries``: the noun agrees with the number."""
    if number == 1:
        return f"1 {noun}"
    return f"{number} {plural or noun + 's'}"
