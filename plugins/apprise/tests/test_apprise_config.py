"""The apprise channel's configuration: URLs are secrets, and Apprise must understand them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from dbnotify import ConfigError, Secret
from dbnotify_apprise import redact
from dbnotify_apprise.plugin import validate_config

SECRET_URL = "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js"


def issues(options: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(options)
    return [str(i) for i in info.value.issues]


def test_urls_are_secrets_and_the_repr_shows_only_schemes() -> None:
    config = validate_config({"urls": [SECRET_URL, "ntfy://ntfy.sh/dbackup", SECRET_URL]})
    assert all(isinstance(u, Secret) for u in config.urls)
    assert config.labels == ("apprise://discord", "apprise://ntfy", "apprise://discord#2")
    assert repr(config) == (
        "AppriseConfig(urls=['apprise://discord', 'apprise://ntfy', 'apprise://discord#2'])"
    )


def test_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_APPRISE_URL", SECRET_URL)
    config = validate_config({"urls": [{"env": "DISCORD_APPRISE_URL"}]})
    assert config.urls[0].reveal() == SECRET_URL
    assert config.urls[0].source == "env DISCORD_APPRISE_URL"


def test_urls_are_required_and_not_empty() -> None:
    assert issues({}) == [
        "urls: required, not set (Apprise URLs, one per service (secrets: they carry the "
        'credentials); a literal, { env = "NAME" } or { file = "/path" } each); e.g. urls = '
        '[{ env = "DISCORD_APPRISE_URL" }, "ntfy://ntfy.sh/dbackup-alerts"]'
    ]
    assert issues({"urls": []}) == ["urls: must not be empty"]


def test_every_bad_url_is_reported_by_index_without_showing_it() -> None:
    found = issues(
        {
            "urls": [
                "ntfy://ntfy.sh/fine",
                "nosuchservice://s3cr3t-token-value@host/x",
                "s3cr3t-token-value-without-scheme",
                "tgram://s3cr3t-bad/",
            ]
        }
    )
    assert found[0] == (
        "urls[1]: Apprise knows no service with the scheme 'nosuchservice://'; the services "
        "and their URLs are listed at https://github.com/caronc/apprise/wiki"
    )
    assert found[1] == (
        "urls[2]: must be an Apprise URL such as ntfy://ntfy.sh/dbackup or "
        "discord://WEBHOOK_ID/WEBHOOK_TOKEN (no scheme:// found)"
    )
    assert found[2].startswith("urls[3]: Apprise cannot use this tgram:// URL")
    assert found[2].endswith("; see https://github.com/caronc/apprise/wiki for its form")
    assert len(found) == 3
    assert not any("s3cr3t" in text for text in found), found


def test_a_config_error_shows_no_character_of_the_password() -> None:
    """Apprise prints a password as its first and last character (``m...s``)."""
    assert issues({"urls": ["gotify://user:marker-pass@host"]}) == [
        "urls[0]: Apprise cannot use this gotify:// URL: An invalid Gotify Token (None) was "
        "specified.; Could not load Gotify URL: gotify://user:********@host; see "
        "https://github.com/caronc/apprise/wiki for its form"
    ]


def test_echoed_basic_credentials_and_apprise_prints_are_masked() -> None:
    """What a service may echo: the Authorization: Basic value Apprise sent it."""
    url = "json://dbackup:marker-pw-9@example.com/hook"
    blob = base64.b64encode(b"dbackup:marker-pw-9").decode()
    said = f"refused Basic {blob}; Basic {blob.rstrip('=')}; pw m...9; token ...pw-9"
    assert redact.redact(said, [url]) == (
        "refused Basic ********; Basic ********; pw ********; token ********"
    )


def test_a_short_password_and_credential_query_value_are_masked_where_they_stand_alone() -> None:
    """Secrets however short; a short path segment or other query value may be a word."""
    url = "ntfys://me:pw@ntfy.example.com/alerts/v2?token=ab&mode=xy"
    said = "pw and token ab refused for v2 (mode xy); abc, tab and pwd stay; p...w"
    assert redact.redact(said, [url]) == (
        "******** and token ******** refused for v2 (mode xy); abc, tab and pwd stay; ********"
    )


def test_unknown_keys_are_refused() -> None:
    assert issues({"urls": ["ntfy://ntfy.sh/x"], "title_template": "x"}) == [
        "title_template: unknown key (known: urls)"
    ]
