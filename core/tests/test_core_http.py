"""dbnotify.http: URL checks, masking what a service echoes, the test stages, and a
channel's ``explain`` of its service's answer (against a real local HTTP server)."""

from __future__ import annotations

import base64
import json
import socket
from urllib.parse import quote

import attrs
import httpx
import pytest
from pytest_httpserver import HTTPServer

from dbnotify import FailureKind, RecipientResult, Secret, Status
from dbnotify.http import TEXT_LIMIT, deliver, scrub, url_problem

TOKEN = "AbCdEf0123456789xyz"
HEADER_SECRET = "Bearer hdr-0123456789abcdef"


def failed(reply: str) -> RecipientResult:
    return RecipientResult.failed("webhook", FailureKind.PERMANENT, "refused", reply=reply)


def test_scrub_masks_the_path_its_token_and_the_password() -> None:
    url = Secret("https://bot:hunter22@hooks.example.com/api/webhooks/123/AbCdEf0123456789xyz?x=1")
    result = scrub(
        failed(
            "404: /api/webhooks/123/AbCdEf0123456789xyz not found; token AbCdEf0123456789xyz; "
            "password hunter22; api and webhooks are words"
        ),
        url,
    )
    assert result.reply == (
        "404: ******** not found; token ********; password ********; api and webhooks are words"
    )
    assert result.reason == "refused"


def test_scrub_masks_a_percent_encoded_token() -> None:
    url = Secret("https://hooks.example.com/t/s3cr3t%2Ftoken-0123456789")
    assert scrub(failed("bad s3cr3t/token-0123456789"), url).reply == "bad ********"


def test_scrub_leaves_results_without_secrets_alone() -> None:
    result = RecipientResult.delivered("webhook", reply="200 OK")
    assert scrub(result, Secret("https://example.com/")) is result


def test_url_problems() -> None:
    assert url_problem("https://example.com/x") is None
    assert url_problem("http://127.0.0.1:8080/x") is None
    assert url_problem("HTTPS://EXAMPLE.COM") is None
    assert url_problem("mailto:ops@example.com") == (
        "must start with https:// or http:// (got mailto://)"
    )
    assert url_problem("https://exa mple.com") == (
        "must be a URL without spaces or control characters"
    )


def long_error(**fields: object) -> str:
    """A JSON error whose ``fields`` come after the first 200 characters."""
    body = json.dumps({"message": "the request was refused " + "because " * 30, **fields})
    assert min(body.index(f'"{key}"') for key in fields) > 200
    return body


def hook(server: HTTPServer) -> Secret:
    return Secret(server.url_for(f"/api/webhooks/1/{TOKEN}"))


async def test_explain_gets_the_whole_response(httpserver: HTTPServer) -> None:
    body = long_error(code=42)
    httpserver.expect_request(f"/api/webhooks/1/{TOKEN}").respond_with_data(
        body, status=400, content_type="application/json"
    )
    seen: list[tuple[str, RecipientResult]] = []

    def explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
        seen.append((response.text, result))
        return attrs.evolve(result, reason=f"refused with code {response.json()['code']}")

    result = await deliver("hook", "POST", hook(httpserver), json={}, explain=explain)

    ((text, generic),) = seen
    assert text == body  # all of it, though the generic reply keeps 200 characters
    assert generic.reason == "the service rejected the request (400 BAD REQUEST)"
    assert generic.reply is not None
    assert len(generic.reply) == len("400 BAD REQUEST: ") + 200
    assert result.reason == "refused with code 42"
    assert result.kind is FailureKind.PERMANENT


async def test_explain_is_called_for_a_success_too(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ok").respond_with_data("fine")
    seen: list[str] = []

    def explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
        seen.append(response.text)
        return result

    result = await deliver("hook", "POST", httpserver.url_for("/ok"), explain=explain)
    assert seen == ["fine"]
    assert (result.status, result.reply) == (Status.DELIVERED, "200 OK")


async def test_explain_is_not_called_without_an_answer() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]

    def explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
        raise AssertionError("called without an answer")

    result = await deliver("hook", "POST", f"http://127.0.0.1:{port}/x", explain=explain)
    assert result.kind is FailureKind.TRANSIENT
    assert result.reason == f"connection refused by 127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("status", "expected", "reason"),
    [
        (
            400,
            Status.FAILED,
            "the service rejected the request (400 BAD REQUEST); the plugin could not read "
            "the service's answer (KeyError)",
        ),
        # it arrived: a failed result would send it again
        (200, Status.DELIVERED, "the plugin could not read the service's answer (KeyError)"),
    ],
)
async def test_an_explain_that_raises_gives_the_generic_result(
    httpserver: HTTPServer, status: int, expected: Status, reason: str
) -> None:
    httpserver.expect_request("/hook").respond_with_data("{}", status=status)

    def explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
        return attrs.evolve(result, reason=response.json()["description"])

    result = await deliver("hook", "POST", httpserver.url_for("/hook"), explain=explain)
    assert result.status is expected
    assert result.reason == reason
    assert result.reply == f"{status} {'BAD REQUEST: {}' if status == 400 else 'OK'}"


async def test_secrets_explain_copies_from_the_body_are_masked(httpserver: HTTPServer) -> None:
    """The whole URL, its token alone, and a secret header, anywhere in the answer."""
    url = hook(httpserver)
    echo = f"url {url.reveal()} token {TOKEN} header {HEADER_SECRET}"
    httpserver.expect_request(f"/api/webhooks/1/{TOKEN}").respond_with_data(
        long_error(echo=echo), status=403, content_type="application/json"
    )

    def explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
        said = response.json()["echo"]
        return attrs.evolve(result, reason=said, reply=said, hint=said)

    result = await deliver(
        "hook",
        "POST",
        url,
        headers={"Authorization": Secret(HEADER_SECRET)},
        explain=explain,
    )
    assert result.reason == "url ******** token ******** header ********"
    assert result.reply == result.hint == result.reason
    assert result.parks_channel is True


async def test_a_secret_across_the_cut_is_masked_whole(httpserver: HTTPServer) -> None:
    """Masked before the texts are cut: no start of a token is left at the end."""
    start = TEXT_LIMIT - 3 - 5  # a cut before masking would keep the token's first 5
    said = "x" * (start - len(" token ")) + f" token {TOKEN} " + "y" * 100
    httpserver.expect_request(f"/api/webhooks/1/{TOKEN}").respond_with_data(said, status=400)

    def explain(response: httpx.Response, result: RecipientResult) -> RecipientResult:
        return attrs.evolve(result, reason=response.text)

    result = await deliver("hook", "POST", hook(httpserver), explain=explain)
    assert result.reason is not None
    assert len(result.reason) == TEXT_LIMIT
    assert result.reason.endswith(" token *****...")
    assert TOKEN[:3] not in result.reason


async def test_the_generic_reply_masks_before_it_cuts(httpserver: HTTPServer) -> None:
    said = "x" * 190 + f" {TOKEN} and more"  # cut first, 9 characters of it would show
    httpserver.expect_request(f"/api/webhooks/1/{TOKEN}").respond_with_data(said, status=400)
    result = await deliver("hook", "POST", hook(httpserver))
    assert result.reply == "400 BAD REQUEST: " + "x" * 190 + " ******** "


IMPORT_ONLY = """
import logging
import dbnotify.http
print(len(logging.getLogger("httpx").filters))
"""


def test_importing_dbnotify_http_changes_no_logger() -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", IMPORT_ONLY], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0"


async def test_httpx_log_lines_show_the_host_only(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(f"/hooks/{TOKEN}").respond_with_data("ok")
    url = httpserver.url_for(f"/hooks/{TOKEN}")
    with caplog.at_level("INFO", logger="httpx"):
        result = await deliver("webhook", "POST", Secret(url), json={"a": 1})
    assert result.status is Status.DELIVERED
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == [
        f'HTTP Request: POST http://{httpserver.host}:{httpserver.port} "HTTP/1.0 200 OK"'
    ]
    assert not [line for line in lines if TOKEN in line]  # the server's own log has it


@pytest.mark.parametrize("value", ["k3y-short", "marker-api-key-of-32-characters!"])
async def test_query_values_of_a_secret_url_are_masked_however_short(
    httpserver: HTTPServer, value: str
) -> None:
    """``?apikey=...``: the token is the query value, which a service may echo alone."""
    httpserver.expect_request("/hook").respond_with_data(
        f"apikey {value} / {quote(value, safe='')} is revoked", status=401
    )
    url = Secret(httpserver.url_for("/hook") + "?apikey=" + quote(value, safe="") + "&v=2")
    result = await deliver("hook", "POST", url)
    assert result.reply == "401 UNAUTHORIZED: apikey ******** / ******** is revoked"


async def test_echoed_basic_credentials_are_masked(httpserver: HTTPServer) -> None:
    """Twilio-style ``auth=(sid, token)``: the token, and the Basic header built of it."""
    token = "marker-auth-token"
    blob = base64.b64encode(f"AC123:{token}".encode()).decode()
    httpserver.expect_request("/api").respond_with_data(
        f"bad Authorization: Basic {blob} ({token})", status=401
    )
    result = await deliver("sms", "POST", httpserver.url_for("/api"), auth=("AC123", Secret(token)))
    assert result.reply == "401 UNAUTHORIZED: bad Authorization: Basic ******** (********)"


def test_scrub_masks_a_query_value_and_basic_credentials_of_the_url() -> None:
    blob = base64.b64encode(b"user:pa55word").decode()
    url = Secret("https://hooks.example.com/x?token=t0k3n")
    assert scrub(failed("t0k3n refused"), url).reply == "******** refused"
    url = Secret("https://user:pa55word@hooks.example.com/x")
    assert scrub(failed(f"Basic {blob}"), url).reply == "Basic ********"


# --- short secrets: masked where they stand alone, not inside other words ----------------


async def test_a_short_credential_query_value_is_masked_where_it_stands_alone(
    httpserver: HTTPServer,
) -> None:
    """``?token=ab1`` is a secret however short; ``?v=1`` is not one (``1`` stays)."""
    httpserver.expect_request("/hook").respond_with_data(
        "token ab1 (token=ab1&v=1, 'ab1') refused; see tab1e and ab12", status=401
    )
    url = Secret(httpserver.url_for("/hook") + "?token=ab1&v=1")
    result = await deliver("hook", "POST", url)
    assert result.reply == (
        "401 UNAUTHORIZED: token ******** (token=********&v=1, '********') refused; "
        "see tab1e and ab12"
    )


async def test_a_short_url_password_is_masked(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("password pw for user u: no", status=403)
    url = Secret(f"http://u:pw@{httpserver.host}:{httpserver.port}/x")
    result = await deliver("hook", "POST", url)
    assert result.reply == "403 FORBIDDEN: password ******** for user u: no"


async def test_a_short_secret_is_not_masked_inside_other_words(httpserver: HTTPServer) -> None:
    """A 2-character token masked everywhere would leave nothing readable: only where
    no letter, digit or underscore touches it; its base64 and Basic forms too."""
    blob = base64.b64encode(b"AC1:p1").decode()
    httpserver.expect_request("/api").respond_with_data(
        f"bad key p1 (X-Key: p1) and Basic {blob}; p1x, top1 and p1_ stay; "
        f"base64 {base64.b64encode(b'p1').decode()}",
        status=401,
    )
    result = await deliver(
        "sms",
        "POST",
        httpserver.url_for("/api"),
        headers={"X-Key": Secret("p1")},
        auth=("AC1", Secret("p1")),
    )
    assert result.reply == (
        "401 UNAUTHORIZED: bad key ******** (X-Key: ********) and Basic ********; p1x, top1 "
        "and p1_ stay; base64 ********"
    )


async def test_an_unknown_host_is_named() -> None:
    result = await deliver("hook", "POST", "http://no-such-host.invalid/x")
    assert result.kind is FailureKind.TRANSIENT
    # without a network the resolver says "try again", not "no such name"
    assert (result.reason, result.hint) in [
        ("unknown host no-such-host.invalid", "check the URL's host name"),
        (
            "cannot resolve host no-such-host.invalid now",
            "check this machine's DNS; the outbox retries later",
        ),
    ]


async def test_a_plain_server_behind_https_is_a_tls_failure(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("plain")
    result = await deliver("hook", "POST", f"https://127.0.0.1:{httpserver.port}/x")
    assert result.reason is not None
    assert result.reason.startswith(f"TLS failed with 127.0.0.1:{httpserver.port}: ")
    assert result.hint == (
        "check that the URL's scheme and port fit the server (https:// speaks TLS)"
    )
