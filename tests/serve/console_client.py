"""Signing in to the console of a running ``dbnotify serve`` the way a browser does:
the sign-in page's form (its CSRF field and cookie), then the session cookie."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator

import httpx

from .conftest import Served

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, "the page has no CSRF field"
    return html.unescape(found[1])


def console(served: Served) -> httpx.AsyncClient:
    """A cookie-keeping client that does not follow redirects (the tests look at them)."""
    return httpx.AsyncClient(
        base_url=served.url, timeout=30, headers={"Origin": served.url}, follow_redirects=False
    )


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    page = await client.get("/console/sign-in")
    return await client.post("/console/sign-in", data={"csrf": csrf_of(page.text), "token": token})


@contextlib.asynccontextmanager
async def signed_in(served: Served, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A console client with a session of ``token``."""
    async with console(served) as client:
        reply = await sign_in(client, token)
        assert reply.status_code == 303, reply.text
        assert reply.headers["location"] == "/console/channels"
        yield client
