"""What every console page and form goes through: security headers on each response,
and on each POST the same-origin checks and the form's CSRF token.

A POST is refused (403) when the browser says it comes from another site
(``Sec-Fetch-Site``), when its ``Origin`` is another server's (``null``, which Chromium
sends from a no-referrer page such as the console's, proves nothing), or when its hidden
``csrf`` field is not the session's token (the sign-in form's: the one in its own
cookie). SameSite=Strict cookies already keep other sites' requests unauthenticated;
these checks hold even for a browser that ignores SameSite.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from dbnotify.serve.bodies import read_body
from dbnotify.serve.problems import ApiError, Problem

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
"""The console's pages: their own script and style files only, never inline script."""
PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
"""A rendered email, shown in the console's sandboxed iframe: its inline styles, nothing
that runs, loads or submits; and framed by the console alone."""


def secure_headers(response: Response, *, policy: str = PAGE_POLICY) -> Response:
    """Add the headers every console response carries (a policy already set stays: the
    email preview's)."""
    headers = response.headers
    policy = headers.setdefault("Content-Security-Policy", policy)
    headers["X-Frame-Options"] = "SAMEORIGIN" if "frame-ancestors 'self'" in policy else "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cache-Control"] = "no-store"
    return response


def refused(detail: str, field: str, fix: str, value: str | None = None) -> ApiError:
    return ApiError(403, detail, [Problem(field, fix, value)])


def same_origin(request: Request) -> None:
    """403 unless the browser says the form was sent from this server's own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise refused(
            "the form came from another site",
            "Sec-Fetch-Site",
            "send the form from the console's own page (open /console and try again)",
            site,
        )
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    # "null": what Chromium sends for a form posted from a page whose Referrer-Policy is
    # no-referrer (the console's); it says nothing, so Sec-Fetch-Site and the token decide
    if origin not in (None, "null", own):
        raise refused(
            "the form came from another origin",
            "Origin",
            f"send the form from {own}/console; behind a proxy, pass the original Host "
            "header and X-Forwarded-Proto",
            origin,
        )


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """The URL-encoded form (the console's forms send nothing else), up to ``limit``
    bytes; a key given twice keeps its last value."""
    raw = await read_body(request, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(
            400, "the form is not UTF-8", [Problem(None, "send the form from the console")]
        ) from None
    return dict(parse_qsl(text, keep_blank_values=True))


def check_csrf(form: Mapping[str, str], expected: str | None) -> None:
    """403 unless the form's ``csrf`` field is ``expected``."""
    given = form.get("csrf", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise refused(
            "the form's CSRF token is missing or out of date",
            "csrf",
            "reload the page and send the form again (a form is valid for its session only)",
        )
