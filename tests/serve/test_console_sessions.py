"""Console sessions: what ends one (signing out, the token removed, changed or narrowed
in the file, idleness, age), and that each sign-in gets a fresh id."""

from __future__ import annotations

import pytest

from dbnotify.config.model import ApiToken, Scope
from dbnotify.secrets import Secret
from dbnotify.serve.console.sessions import IDLE, LIFETIME, SessionStore

ADMIN = ApiToken(Secret("admin-token-0123456789abcdefghij"), (Scope.ADMIN,))
READER = ApiToken(Secret("read-token-0123456789abcdefghij"), (Scope.READ,))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> SessionStore:
    sessions = SessionStore()
    sessions.clock = clock
    return sessions


def test_a_session_names_its_token_and_what_it_may_do(store: SessionStore) -> None:
    admin = store.start("admin", ADMIN)
    reader = store.start("reader", READER)
    tokens = {"admin": ADMIN, "reader": READER}
    seen = store.find(admin.id, tokens)
    assert seen is not None
    assert (seen.name, seen.can_change) == ("admin", True)
    assert seen.csrf == admin.csrf
    read_only = store.find(reader.id, tokens)
    assert read_only is not None
    assert read_only.can_change is False
    assert store.find("no-such-session", tokens) is None
    assert store.find(None, tokens) is None


def test_each_sign_in_gets_a_new_id_and_csrf_token(store: SessionStore) -> None:
    first, second = store.start("admin", ADMIN), store.start("admin", ADMIN)
    assert first.id != second.id
    assert first.csrf != second.csrf
    assert "admin-token" not in repr(first)


def test_signing_out_ends_the_session(store: SessionStore) -> None:
    session = store.start("admin", ADMIN)
    store.end(session.id)
    assert store.find(session.id, {"admin": ADMIN}) is None


def test_the_token_removed_changed_or_narrowed_ends_its_sessions(store: SessionStore) -> None:
    removed, changed, narrowed = (store.start("admin", ADMIN) for _ in range(3))
    assert store.find(removed.id, {}) is None
    other_value = ApiToken(Secret("admin-token-rotated-0123456789ab"), (Scope.ADMIN,))
    assert store.find(changed.id, {"admin": other_value}) is None
    send_only = ApiToken(ADMIN.secret, (Scope.SEND,))
    assert store.find(narrowed.id, {"admin": send_only}) is None
    assert store.find(narrowed.id, {"admin": ADMIN}) is None  # ended, not suspended


def test_an_idle_or_old_session_ends(store: SessionStore, clock: Clock) -> None:
    tokens = {"admin": ADMIN}
    idle = store.start("admin", ADMIN)
    clock.now += IDLE + 1
    assert store.find(idle.id, tokens) is None
    used = store.start("admin", ADMIN)
    while clock.now - used.started <= LIFETIME:  # used every few hours: kept, for a day
        assert store.find(used.id, tokens) is not None
        clock.now += IDLE / 2
    assert store.find(used.id, tokens) is None
