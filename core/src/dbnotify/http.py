"""HTTP delivery for webhook-style channels (``pip install 'dbnotify[http]'``).

One place that turns an HTTP exchange into a :class:`~dbnotify.results.RecipientResult`,
so that every HTTP channel treats the same answer the same way:

- 2xx: delivered;
- 429: transient, with the service's ``Retry-After`` (the outbox waits at least that);
- 408, 5xx, timeouts, connection failures: transient;
- 401, 403: permanent, and the channel is parked (a bad token does not get better);
- 404, 410: permanent (the webhook was deleted or the URL is wrong);
- other 4xx: permanent, with the start of the service's explanation.

A channel that knows its service's error answers reads them with ``explain`` (see
:func:`deliver`): it gets the whole response, not the 200 characters a result keeps.

URLs often carry a token (Discord, Slack, Teams webhooks; Telegram bot URLs), so no
message ever shows more of a URL than its scheme and host: not our results (token-like
parts a service echoes are masked, in what ``explain`` says too), and not httpx's own
log lines either.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
import httpx

from dbnotify.config.fields import describe_value
from dbnotify.results import FailureKind, RecipientResult, Status, TestStage
from dbnotify.secrets import Masker, Secret, basic_forms, credential_key, forms

DEFAULT_TIMEOUT = 15.0
TEXT_LIMIT = 1000
"""Characters kept of each text (reason, reply, hint) of a result of :func:`deliver`."""

log = logging.getLogger(__name__)


class _HostOnly(logging.Filter):
    """httpx logs each request's full URL at INFO: keep only scheme and host."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                where(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


@functools.cache
def _mask_httpx_log() -> None:
    """Put the filter on httpx's logger, once, when this process first makes a request
    (not on import: importing a module changes nothing global)."""
    logging.getLogger("httpx").addFilter(_HostOnly())


def client(*, timeout: float, verify: bool | str = True) -> httpx.AsyncClient:
    """The HTTP client of every HTTP channel: no redirects followed (a redirect could
    carry a token elsewhere), and httpx's log lines showing scheme and host only."""
    _mask_httpx_log()
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=verify)


def where(url: str) -> str:
    """``https://discord.com`` of a webhook URL: never its path or query (tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _reveal(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the service asks us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def json_answer(response: httpx.Response) -> dict[str, Any] | None:
    """The service's answer as a JSON object (``{"code": 21211, ...}``), else ``None``
    (an HTML error page, an empty body, a JSON array)."""
    try:
        found = response.json()
    except ValueError:  # not JSON, or not in the encoding it claims
        return None
    return found if isinstance(found, dict) else None


def _excerpt(response: httpx.Response, mask: Masker) -> str:
    # masked before it is cut: a secret across the cut would leave its start
    return mask(" ".join(response.text.split()))[:200]


NOT_FOUND = (
    "the service does not know this address (webhook deleted, or wrong URL)",
    "create the webhook again and update the configuration",
)
"""What a 404 or 410 means to a webhook channel: reason and hint (see ``not_found``)."""


def result_of(
    label: str,
    response: httpx.Response,
    *,
    secrets: tuple[str, ...] = (),
    not_found: tuple[str, str] = NOT_FOUND,
) -> RecipientResult:
    """What an HTTP answer means, per the rules in this module's docstring.

    ``not_found`` is the reason and hint of a 404 or 410: for a service whose address is
    not a webhook (an API, a server of one's own), a 404 means something else.
    """
    status = response.status_code
    reply = f"{status} {response.reason_phrase}".strip()
    if 200 <= status < 300:
        return RecipientResult.delivered(label, reply=reply)
    said = _excerpt(response, Masker(secrets))
    detail = f"{reply}: {said}" if said else reply
    if status == 429:
        wait = retry_after(response)
        return RecipientResult.failed(
            label,
            FailureKind.TRANSIENT,
            "rate limited by the service"
            + (f"; it asks to wait {wait:g}s" if wait is not None else ""),
            reply=detail,
            hint="the outbox retries after the wait; send fewer notifications to this channel",
            retry_after=wait,
        )
    if status == 408 or status >= 500:
        return RecipientResult.failed(
            label,
            FailureKind.TRANSIENT,
            f"the service failed ({reply})",
            reply=detail,
            hint="the service has a problem on its side; try again later",
            retry_after=retry_after(response),
        )
    if status in (401, 403):
        return RecipientResult.failed(
            label,
            FailureKind.PERMANENT,
            "the service refused the credentials",
            reply=detail,
            hint="check the token or webhook URL; it may have been revoked",
            parks_channel=True,
        )
    if status in (404, 410):
        return RecipientResult.failed(
            label,
            FailureKind.PERMANENT,
            not_found[0],
            reply=detail,
            hint=not_found[1],
        )
    return RecipientResult.failed(
        label,
        FailureKind.PERMANENT,
        f"the service rejected the request ({reply})",
        reply=detail,
        hint="this channel's settings do not fit what the service expects",
    )


async def deliver(
    label: str,
    method: str,
    url: str | Secret,
    *,
    json: Any = None,
    content: str | bytes | None = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str | Secret] | None = None,
    auth: tuple[str, str | Secret] | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - httpx applies it to each phase
    verify: bool | str = True,
    explain: Callable[[httpx.Response, RecipientResult], RecipientResult] | None = None,
    not_found: tuple[str, str] = NOT_FOUND,
) -> RecipientResult:
    """Send one request and say what happened to ``label``. Never raises for a failure.

    ``not_found``: reason and hint of a 404 or 410 (see :func:`result_of`).

    ``explain(response, result)``, when given, is called whenever the service answered
    (any status, not after a timeout or a connection failure) with the whole response and
    the generic :func:`result_of` result, and returns the result to use: the channel's
    reading of its service's own answer (``response.json()``). If ``explain`` raises, the
    generic result is used, its reason saying that the answer could not be read.

    Then, whoever wrote them, the result's reason, reply and hint have every
    :class:`~dbnotify.secrets.Secret` given here masked (and the token-like parts of a
    Secret ``url``, as :func:`scrub` does), and are cut to :data:`TEXT_LIMIT` characters:
    ``explain`` may quote the service's answer as it is.
    """
    target = _reveal(url)
    plain_headers = {k: _reveal(v) for k, v in (headers or {}).items()}
    found = {
        form
        for s in (url, *(headers or {}).values(), *(auth or ()))
        if isinstance(s, Secret)
        for form in secret_forms(s.reveal())
    }
    if auth is not None and isinstance(auth[1], Secret):
        found |= basic_forms(auth[0], auth[1].reveal())
    if isinstance(url, Secret):
        found.update(url_secrets(target))
    secrets = tuple(sorted(found - {""}, key=len, reverse=True))  # longest first
    mask = Masker(secrets)
    try:
        async with client(timeout=timeout, verify=verify) as http:
            response = await http.request(
                method,
                target,
                json=json,
                content=content,
                data=data,
                headers=plain_headers,
                auth=(auth[0], _reveal(auth[1])) if auth else None,
            )
    except httpx.TimeoutException:
        return RecipientResult.failed(
            label,
            FailureKind.TRANSIENT,
            f"no answer from {where(target)} within {timeout:g}s",
            hint="the service is slow or unreachable from here; check the network",
        )
    except httpx.HTTPError as exc:
        return unreachable(label, target, exc)
    except UnicodeEncodeError:  # its text would show a character of a header: a token's
        return RecipientResult.failed(
            label,
            FailureKind.PERMANENT,
            "a request header holds a character that is not ASCII",
            hint="check the channel's tokens and headers for a pasted quote or accent",
        )
    result = result_of(label, response, secrets=secrets, not_found=not_found)
    if explain is not None:
        result = _explained(explain, response, result)
    return _masked(result, mask)


def _os_error(exc: BaseException) -> OSError | None:
    """The operating system's error under httpx's, httpcore's and anyio's wrappers (the
    deepest: anyio's "All connection attempts failed" wraps the refusal), if any."""
    seen: set[int] = set()
    found: OSError | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            found = current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return found


def unreachable(label: str, url: str, exc: httpx.HTTPError) -> RecipientResult:
    """A request that got no answer (not a timeout), said in words: ``connection refused
    by HOST:PORT``, ``unknown host HOST``, a TLS failure; never only httpx's class name."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cause = _os_error(exc)
    reason = f"cannot reach {where(url)}: {type(exc).__name__}"
    hint = "check the URL's host, this machine's network and DNS, and any proxy"
    if isinstance(cause, ConnectionRefusedError):
        reason = f"connection refused by {address}"
        hint = (
            "nothing accepts connections there: check the URL's host and port, and that "
            "the service is running and reachable from here (firewall, proxy)"
        )
    elif isinstance(cause, socket.gaierror):
        unknown = cause.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
        reason = f"unknown host {host}" if unknown else f"cannot resolve host {host} now"
        hint = (
            "check the URL's host name"
            if unknown
            else "check this machine's DNS; the outbox retries later"
        )
    elif isinstance(cause, ssl.SSLCertVerificationError):
        reason = f"TLS certificate of {address} not trusted: {cause.verify_message}"
        hint = "check the URL's host name; a private CA must be trusted by this machine"
    elif isinstance(cause, ssl.SSLError):
        reason = f"TLS failed with {address}: {cause.reason or type(cause).__name__}"
        hint = "check that the URL's scheme and port fit the server (https:// speaks TLS)"
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        reason = f"{address} closed the connection without an answer"
        hint = "the service or something between (a proxy) dropped the request; the outbox retries"
    elif cause is not None and cause.strerror:
        reason = f"cannot reach {address}: {cause.strerror}"
    return RecipientResult.failed(label, FailureKind.TRANSIENT, reason, hint=hint)


def _explained(
    explain: Callable[[httpx.Response, RecipientResult], RecipientResult],
    response: httpx.Response,
    result: RecipientResult,
) -> RecipientResult:
    """What ``explain`` makes of the answer, or ``result`` with a note if it raised."""
    try:
        explained = explain(response, result)
        if not isinstance(explained, RecipientResult):
            raise TypeError(f"explain returned {type(explained).__name__}")
    except Exception as exc:  # noqa: BLE001 - a failure is a result, never an exception
        # its type only: its message may quote the answer, and with it a token
        what = type(exc).__name__
        log.warning("%s: the plugin could not read the answer: %s", result.recipient, what)
        note = f"the plugin could not read the service's answer ({what})"
        return attrs.evolve(result, reason=f"{result.reason}; {note}" if result.reason else note)
    return explained


def _masked(result: RecipientResult, mask: Masker) -> RecipientResult:
    """``result`` with every secret masked in its texts, each cut to TEXT_LIMIT."""

    def clean(text: str | None) -> str | None:
        if text is None:
            return None
        text = mask(text)  # before the cut, so no secret is left half there
        if len(text) > TEXT_LIMIT:
            text = text[: TEXT_LIMIT - 3] + "..."
        return text

    return attrs.evolve(
        result, reason=clean(result.reason), reply=clean(result.reply), hint=clean(result.hint)
    )


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook URL, in words that never repeat the URL itself.

    Webhook URLs carry their token in the path, so only the scheme is ever named.
    """
    if not url:
        return "must not be empty"
    if _CONTROL_OR_SPACE.search(url):
        return "must be a URL without spaces or control characters"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        got = f"{parts.scheme}://" if parts.scheme and "." not in parts.scheme else "no scheme"
        return f"must start with https:// or http:// (got {got})"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "has an invalid port number"
    if not parts.hostname:
        return f"has no host name after {scheme}://"
    return None


def header_secret(_inst: Any, _attr: Any, value: Secret | None) -> None:
    """attrs validator: a token sent in an HTTP header, which carries printable ASCII
    only (another character fails every request). Says where it came from, never any
    character of it."""
    if value is None:
        return
    text = value.reveal()
    if not text.strip():
        raise ValueError(f"is empty ({value.source})")
    if not all(" " <= c <= "~" for c in text):
        raise ValueError(
            "must be printable ASCII: it is sent in an HTTP header, which cannot carry "
            f"other characters (a pasted quote, accent or line break?) ({value.source})"
        )


def check_url(_inst: Any, _attr: attrs.Attribute[Any], value: Secret | str | None) -> None:
    """attrs validator: an http(s) URL (a Secret webhook URL, or a plain one)."""
    if value is None:
        return
    problem = url_problem(value.reveal() if isinstance(value, Secret) else value)
    if problem:
        raise ValueError(problem)


MIN_QUERY_VALUE = 4
"""A query value shorter than this is masked only under a key that names a credential
(``?key=ab``): another key's short value may be a word (``?v=1``, ``?fmt=json``)."""


def secret_forms(secret: str) -> set[str]:
    """``secret`` as a service may echo it: as it is, URL-encoded, base64
    (:func:`dbnotify.secrets.forms`; masked by :class:`~dbnotify.secrets.Masker`'s rule,
    a short one only where it stands alone)."""
    return forms(secret)


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be a token, longest first: path, query, long path
    segments, every query value of 4 characters or more and every one under a key such as
    ``apikey`` or ``token`` however short, and the password (however short) with the
    Basic value of user and password."""
    parts = urlsplit(url)
    found = [parts.path, parts.query]
    for segment in parts.path.split("/"):
        found += [segment, unquote(segment)]
    secrets = {s for s in found if len(s) >= 16}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if len(value) >= MIN_QUERY_VALUE or credential_key(key):
            secrets |= secret_forms(value)
    if parts.password:
        password = unquote(parts.password)
        secrets |= {parts.password, *basic_forms(unquote(parts.username or ""), password)}
    return sorted(secrets, key=len, reverse=True)


def scrub(result: RecipientResult, url: Secret) -> RecipientResult:
    """``result`` with every token-like part of ``url`` masked in its reply and reason.

    A service may echo only the path (``/api/webhooks/1/TOKEN was not found``) or the
    token. :func:`~dbnotify.http.deliver` does this itself for a Secret URL; this is for
    a channel that sends its requests some other way.
    """
    mask = Masker(url_secrets(url.reveal()))
    if not mask:
        return result
    return attrs.evolve(
        result, reply=mask.optional(result.reply), reason=mask.optional(result.reason)
    )


def config_stage(url: Secret, what: str, *, send_message: bool, started: float) -> TestStage:
    """The ``config`` stage of a test: where requests go, and whether one is sent."""
    detail = f"{what} at {where(url.reveal())}"
    if not send_message:
        detail += "; no request sent"
    return TestStage("config", True, detail, time.monotonic() - started)


def request_stage(result: RecipientResult, started: float) -> TestStage:
    """The ``request`` stage of a test: what the service answered."""
    duration = time.monotonic() - started
    if result.status is Status.DELIVERED:
        return TestStage("request", True, f"delivered: {result.reply}", duration)
    detail = result.reason or "not delivered"
    if result.reply:
        detail += f" (reply: {result.reply})"
    return TestStage("request", False, detail, duration, hint=result.hint)


def api_url(example: str, *, credentials: str = "") -> Callable[[Any, Any, str], None]:
    """attrs validator: an http(s) API base URL with a host and nothing that could carry a
    credential (user, password, query, fragment). ``credentials`` says where they go."""

    def check(_inst: Any, _attr: Any, value: str) -> None:
        # the value is echoed only without anything that may carry a token: a query,
        # a user, a fragment, or a path (Telegram's /bot<token>)
        _scheme, sep, rest = value.partition("://")
        path = (rest if sep else value).partition("/")[2]
        risky = "?" in value or "@" in value or "#" in value or bool(path.strip("/"))
        shown = "" if risky else f" (got {describe_value(value)})"
        problem = f'must be an http:// or https:// URL, e.g. "{example}"{shown}'
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError(problem) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(problem)
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not hold a user or password" + (f"; {credentials}" if credentials else "")
            )
        if parts.query or parts.fragment:
            raise ValueError("must not have a query (?...) or fragment (#...)")

    return check
