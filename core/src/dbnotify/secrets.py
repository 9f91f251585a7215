"""Secret values: a type whose repr and str never show what it holds.

A plain slotted class, not an attrs class, so that ``attrs.asdict`` and
``cattrs.unstructure`` of a configuration cannot reach into it either.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

MASK = "********"


def redacted_url(url: str) -> str:
    """``url`` with the password of its user part masked, for messages and reprs
    (``postgresql://dbnotify:********@db:5432/dbnotify``); unchanged when it has none.
    A string that does not parse as a URL is replaced whole: it may be mostly password."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    if password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}:{MASK}@{host}"))


class Secret:
    """A password or token. Only :meth:`reveal` gives the value, and only on purpose.

    ``source`` says where it came from (``env SMTP_PASSWORD``, ``file /run/secrets/x``,
    ``literal``) so that messages can name it without showing it.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "literal") -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK}, source={self.source!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:  # pickling would write the value somewhere unplanned
        raise TypeError("Secret values cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
