"""Secret values: a type whose repr and str never show what it holds; the masking of
secrets in what a server echoes (:class:`Masker`), for the core and every channel; and
URLs shown without their password (:func:`redacted_url`).

``Secret`` is a plain slotted class, not an attrs class, so that ``attrs.asdict`` and
``cattrs.unstructure`` of a configuration cannot reach into it either.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

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


# --- masking what a server echoes ------------------------------------------------------

MIN_ANYWHERE = 4
"""A form of a secret this long or longer is masked wherever it is in a text.

A shorter one (a 3-character password, its base64 without padding) is masked only where
it stands alone, with no letter, digit or underscore right before or after it: a server
that echoes a secret echoes it as a token of its own (``password ab refused``,
``pw=ab&x=1``, ``"ab"``), while masking every ``ab`` would make replies unreadable
(``about``, ``table``)."""

_CREDENTIAL_KEY = re.compile(r"token|key|secret|pass|pwd|auth|sig|credential", re.IGNORECASE)


def credential_key(name: str) -> bool:
    """Whether a query key (``apikey``, ``access_token``, ``password``) names a secret:
    then its value is masked however short; another key's short value may be a word
    (``v=1``, ``format=json``)."""
    return bool(_CREDENTIAL_KEY.search(name))


def _base64(data: bytes) -> set[str]:
    standard = base64.b64encode(data).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(data).decode("ascii")
    return {standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("=")}


def forms(secret: str) -> set[str]:
    """``secret`` as a server may echo it: as it is, URL-encoded (``%2F`` and ``+`` for
    a space), and in base64 (standard and URL-safe, with and without padding)."""
    if not secret:
        return set()
    return {secret, quote(secret, safe=""), quote_plus(secret), *_base64(secret.encode())}


def base64_forms(data: bytes) -> set[str]:
    """``data`` in base64 as a server may echo it: an AUTH exchange, a Basic header."""
    return _base64(data) if data else set()


def basic_forms(user: str, password: str) -> set[str]:
    """The ``Authorization: Basic`` value of ``user`` and ``password`` (echoed by some
    services), and the password's own forms."""
    return base64_forms(f"{user}:{password}".encode()) | forms(password)


class Masker:
    """Masks every form of some secrets in a text, by the rule of :data:`MIN_ANYWHERE`.

    One implementation for the core and every channel: build it once from the secrets'
    :func:`forms` (and the channel's own, such as an AUTH exchange), then call it on
    each text that came from outside. Longer forms are masked first, so a form that
    holds a shorter one is masked whole. Its ``repr`` never shows a form.
    """

    __slots__ = ("_alone", "_anywhere", "_count")

    def __init__(self, found: Iterable[str] = ()) -> None:
        unique = sorted({f for f in found if f}, key=lambda f: (-len(f), f))
        self._count = len(unique)
        self._anywhere = tuple(f for f in unique if len(f) >= MIN_ANYWHERE)
        alone = [re.escape(f) for f in unique if len(f) < MIN_ANYWHERE]
        self._alone = re.compile(rf"(?<!\w)(?:{'|'.join(alone)})(?!\w)") if alone else None

    def __call__(self, text: str) -> str:
        for form in self._anywhere:
            if form in text:
                text = text.replace(form, MASK)
        if self._alone is not None:
            text = self._alone.sub(MASK, text)
        return text

    def optional(self, text: str | None) -> str | None:
        """``text`` masked; None stays None."""
        return None if text is None else self(text)

    def __bool__(self) -> bool:
        return self._count > 0

    def __repr__(self) -> str:
        return f"Masker({self._count} forms)"

    def __reduce__(self) -> Any:  # as Secret: its forms would be written somewhere unplanned
        raise TypeError("Masker values cannot be pickled")
