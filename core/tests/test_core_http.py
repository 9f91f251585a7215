"""dbnotify.http: URL checks, masking what a service echoes, the test stages."""

from __future__ import annotations

from dbnotify import FailureKind, RecipientResult, Secret
from dbnotify.http import scrub, url_problem


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
