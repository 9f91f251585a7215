"""One request to an Office 365 connector, and what its answer really means.

A connector answers ``200`` even when it did not deliver the card: success is a body
that is a number (the messages posted, ``1``); a failure is a ``200`` whose body says
``Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP
error 429 ...`` (Microsoft's engineers: "O365 Connectors return 200 for what they think
are retry-able"). :func:`dbnotify.http.deliver` never shows a successful answer's body,
so this module makes the request itself, with the same client settings, and hands every
status to :func:`dbnotify.http.result_of`, so that the project's HTTP rules still apply.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import httpx

from dbnotify.channel import FailureKind, Masker, RecipientResult, Secret, Status
from dbnotify.http import DEFAULT_TIMEOUT, client, result_of, unreachable, url_secrets, where

_EMBEDDED_STATUS = re.compile(r"HTTP error (\d{3})")


def _excerpt(text: str, secrets: tuple[str, ...]) -> str:
    # masked before the cut: a token across it would leave its start
    return Masker(secrets)(" ".join(text.split()))[:200]


def _secrets(url: str) -> tuple[str, ...]:
    """The URL and each part of it that may be a token, longest first."""
    return tuple(sorted({url, *url_secrets(url)}, key=len, reverse=True))


def confirmed(label: str, response: httpx.Response, url: str) -> RecipientResult:
    """The result of a 2xx answer: delivered only if the connector says it posted."""
    text = response.text.strip()
    reply = f"{response.status_code} {response.reason_phrase}".strip()
    if not text or text.isdigit():
        return RecipientResult.delivered(label, reply=f"{reply}: {text}" if text else reply)
    secrets = _secrets(url)
    said = _excerpt(text, secrets)
    found = _EMBEDDED_STATUS.search(text)
    if found is None:
        return RecipientResult.failed(
            label,
            FailureKind.TRANSIENT,
            f"Teams answered {reply} without confirming that it posted the card",
            reply=f"{reply}: {said}",
            hint="Teams reports problems it may get over this way; the outbox retries. If it "
            "lasts, check that the URL is an Incoming Webhook connector's",
        )
    status = int(found[1])
    inner = result_of(label, httpx.Response(status, text=text), secrets=secrets)
    return attrs.evolve(
        inner,
        reason=f"Teams accepted the request but did not post the card: {inner.reason}",
        reply=f"{reply}: {said}",
        hint=HINTS.get(status, inner.hint),
    )


HINTS = {
    429: "Teams limits how often a connector may post (a few messages a second); the "
    "outbox retries later; send fewer notifications to this channel",
    413: "the card is larger than Teams takes (about 28 KB); please report it to "
    "dbnotify-teams with the event that caused it",
    400: "Teams refused the card; if the channel or the team was deleted, create the "
    "connector again, else please report it to dbnotify-teams",
}


async def post(
    label: str,
    url: Secret,
    body: Any,
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - httpx applies it to each phase
) -> RecipientResult:
    """POST ``body`` as JSON; never raises for a failure (like ``deliver``)."""
    target = url.reveal()
    try:
        async with client(timeout=timeout) as http:
            response = await http.post(target, json=body)
    except httpx.TimeoutException:
        return RecipientResult.failed(
            label,
            FailureKind.TRANSIENT,
            f"no answer from {where(target)} within {timeout:g}s",
            hint="the service is slow or unreachable from here; check the network",
        )
    except httpx.HTTPError as exc:
        return unreachable(label, target, exc)
    result = result_of(label, response, secrets=_secrets(target))
    if result.status is Status.DELIVERED:
        return confirmed(label, response, target)
    return result
