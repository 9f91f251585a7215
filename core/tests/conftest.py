"""Fixtures shared by the core's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dbnotify.testing import postgres as pg


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Server]:
    """A throwaway PostgreSQL on 127.0.0.1 for the session (``dbnotify.testing.postgres``).

    Skips when PostgreSQL or psycopg is missing, but fails when ``CI`` is set: CI must
    never skip these tests silently.
    """
    try:
        server = pg.start()
    except pg.Unavailable as missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (CI is set: this test must run, not skip)", pytrace=False)
        pytest.skip(str(missing))
    with server:
        yield server
