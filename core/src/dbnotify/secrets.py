"""Secret values: a type whose repr and str never show what it holds.

A plain slotted class, not an attrs class, so that ``attrs.asdict`` and
``cattrs.unstructure`` of a configuration cannot reach into it either.
"""

from __future__ import annotations

from typing import Any

MASK = "********"


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
