"""``Idempotency-Key`` (IETF draft-ietf-httpapi-idempotency-key-header): a request sent
again with the same key gets the first answer, and nothing is sent twice.

Keys are per token (two hosts may pick the same key). Each key is kept twice:

- in this process's memory, with the first answer, for :data:`KEEP` seconds (at most
  :data:`LIMIT` keys, the oldest go first): a repeat gets that answer byte for byte;
- in the outbox, durably: the notification's id is derived from the token and the key
  (:func:`keyed_id`), and the outbox keeps one notification per id. After a restart
  a repeat finds the notification there and gets its page as it stands now (marked a
  replay too), until ``[outbox] retention`` purges it. Then the body cannot be compared
  (only its event type is), and without an outbox (direct mode) a restart forgets.

As the draft says: the same key with another body is 422 (the key is misused; sending
it again will not help), and the same key while its first request is still running is
409 with ``Retry-After`` (it will be answered; ask again). Only a success is kept: a
request refused (422, 503) may be sent again with the same key once fixed.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from dbnotify.serve.problems import ApiError, Problem

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
"""Set (``true``) on a reply that is a replay of the first one."""
KEEP = 24 * 3600.0
LIMIT = 10_000
MAX_LENGTH = 255
IN_FLIGHT_RETRY = 1
"""Seconds a client should wait before asking again about a request still running."""


@attrs.frozen
class Answer:
    """A reply as first given: replayed byte for byte."""

    status: int
    body: bytes
    headers: dict[str, str]
    fingerprint: str
    at: float


def fingerprint(body: Any) -> str:
    """The body's identity: its JSON with keys sorted, so that spacing and key order do
    not make a repeat look like another request."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def parse_key(header: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header (a Structured Field string, or the bare
    text many clients send); 400 when it is empty, too long or not printable ASCII."""
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_LENGTH or not all("!" <= c <= "~" for c in key):
        raise ApiError(
            400,
            f"invalid {HEADER} header",
            [
                Problem(
                    HEADER,
                    f"send 1 to {MAX_LENGTH} printable ASCII characters without spaces, "
                    'e.g. a UUID: Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"',
                    header[:80],
                )
            ],
        )
    return key


KEYED = uuid.UUID("5b0a3f8e-6a3c-4d55-9d0e-2f5d1c7a9e41")
"""The namespace of notification ids derived from keys (any fixed UUID will do)."""


def keyed_id(token: str, key: str) -> str:
    """The notification id of ``key`` sent with ``token``: the same on every repeat and
    after a restart, so that the outbox remembers the key as long as the notification."""
    return uuid.uuid5(KEYED, f"{token}\n{key}").hex


def reused(key: str) -> ApiError:
    """422: ``key`` came with another body than the first time."""
    return ApiError(
        422,
        f"this {HEADER} was used with another body",
        [
            Problem(
                HEADER,
                "use a new key for a new event; a key may be sent again only with "
                "the very body it was first sent with",
                key,
            )
        ],
    )


class IdempotencyKeys:
    """The answers given to requests with a key, by token and key."""

    def __init__(
        self, *, keep: float = KEEP, limit: int = LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.keep = keep
        self.limit = limit
        self.clock = clock
        self._answers: collections.OrderedDict[tuple[str, str], Answer] = collections.OrderedDict()
        self._running: dict[tuple[str, str], str] = {}

    def begin(self, token: str, key: str, print_: str) -> Answer | None:
        """The first answer to replay; ``None``: go on, the key is now held by this
        request until :meth:`finish`. Raises 422 (another body) or 409 (still running).
        Never awaits, so two requests cannot both pass on one event loop."""
        self._expire()
        slot = (token, key)
        known = self._answers.get(slot)
        running = self._running.get(slot)
        first = known.fingerprint if known is not None else running
        if first is not None and first != print_:
            raise reused(key)
        if known is not None:
            return known
        if running is not None:
            raise ApiError(
                409,
                f"a request with this {HEADER} is still being processed",
                [Problem(HEADER, f"wait, and send it again in {IN_FLIGHT_RETRY}s", key)],
                headers={"Retry-After": str(IN_FLIGHT_RETRY)},
            )
        self._running[slot] = print_
        return None

    def finish(self, token: str, key: str, answer: Answer | None) -> None:
        """Release the key; keep ``answer`` for replays (``None``: forget the key, so the
        request may be made again)."""
        slot = (token, key)
        self._running.pop(slot, None)
        if answer is None:
            return
        self._answers[slot] = answer
        self._answers.move_to_end(slot)
        while len(self._answers) > self.limit:
            self._answers.popitem(last=False)

    def answer(self, status: int, body: bytes, headers: dict[str, str], print_: str) -> Answer:
        return Answer(status, body, headers, print_, self.clock())

    def _expire(self) -> None:
        oldest = self.clock() - self.keep
        while self._answers:
            slot, first = next(iter(self._answers.items()))
            if first.at >= oldest:
                return
            del self._answers[slot]
