"""Console sessions: a random id in a cookie, mapped in this process to the name of the
token that signed in.

Why server-side rather than a signed cookie: signing out, or removing or changing the
token in the file, ends the session at once (a signed value would stay valid until it
expires); and nothing about the token, not even its name, is in the browser. The cost:
a restart of the server signs everyone out, which a console can afford.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping

import attrs

from dbnotify.config.model import ApiToken, Scope

COOKIE = "dbnotify_console"
"""The session cookie: HttpOnly, SameSite=Strict, Path=/console; Secure over https."""
PRE_COOKIE = "dbnotify_console_signin"
"""Before signing in: the sign-in form's CSRF token (double submit), nothing else."""
IDLE = 8 * 3600.0
"""A session unused this long ends."""
LIFETIME = 24 * 3600.0
"""No session lasts longer, used or not."""
LIMIT = 10_000
"""Sessions kept at most; the least recently used go first."""

_KEY = secrets.token_bytes(32)
"""This process's key for the fingerprints of tokens; never leaves memory."""


def fingerprint(token: ApiToken) -> str:
    """A keyed digest of the token's value: a session ends when the value changes."""
    return hmac.new(_KEY, token.secret.reveal().encode(), hashlib.sha256).hexdigest()


@attrs.define
class Session:
    """One signed-in browser: the token's name, its CSRF token, and its times."""

    id: str = attrs.field(repr=False)
    name: str
    token_print: str = attrs.field(repr=False)
    csrf: str = attrs.field(repr=False)
    started: float
    seen: float


@attrs.frozen
class Viewer:
    """Who looks at a page: the token's name, and whether it may change anything."""

    name: str
    can_change: bool
    csrf: str = attrs.field(repr=False)


class SessionStore:
    """The sessions of this process, by id."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self.clock: Callable[[], float] = time.time
        """Now (tests set it)."""

    def start(self, name: str, token: ApiToken) -> Session:
        """A new session (a new id each sign-in: an id set before cannot be reused)."""
        now = self.clock()
        self._expire(now)
        while len(self._sessions) >= LIMIT:
            oldest = min(self._sessions.values(), key=lambda s: s.seen)
            del self._sessions[oldest.id]
        session = Session(
            secrets.token_urlsafe(32), name, fingerprint(token), secrets.token_urlsafe(32), now, now
        )
        self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None, tokens: Mapping[str, ApiToken]) -> Viewer | None:
        """The viewer of a live session whose token is still configured, unchanged, and
        allows reading; ``None`` otherwise (and such a session ends)."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        token = tokens.get(session.name)
        if (
            token is None
            or not hmac.compare_digest(fingerprint(token), session.token_print)
            or not token.allows(Scope.READ)
            or now - session.seen > IDLE
            or now - session.started > LIFETIME
        ):
            del self._sessions[session_id]
            return None
        session.seen = now
        return Viewer(session.name, token.allows(Scope.ADMIN), session.csrf)

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for sid in [
            s.id
            for s in self._sessions.values()
            if now - s.seen > IDLE or now - s.started > LIFETIME
        ]:
            del self._sessions[sid]
