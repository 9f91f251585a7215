"""The Healthchecks channel's configuration: what is accepted, and every error word for
word (none of them shows the ping URL: its UUID is the credential)."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import ConfigError, Secret, load_config
from dbnotify.plugins import default_registry
from dbnotify_healthchecks.settings import HealthchecksConfig, Signal

CHECK = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"
URL = f"https://hc-ping.com/{CHECK}"


def validate(**options: Any) -> HealthchecksConfig:
    plugin = default_registry().get("healthchecks")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({"ping_url": URL, **options})
    assert isinstance(config, HealthchecksConfig)
    return config


def errors(**options: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    lines = [str(issue) for issue in info.value.issues]
    for line in lines:
        assert CHECK not in line
    return lines


def test_defaults() -> None:
    config = validate()
    assert config.ping_url == Secret(URL)
    assert config.signals == {
        "backup_started": Signal.START,
        "backup_success": Signal.SUCCESS,
        "backup_failure": Signal.FAIL,
    }
    assert config.run_id is True
    assert config.body_limit == 100_000
    assert config.timeout == 10.0


def test_plugin_is_listed_without_user_delivery() -> None:
    plugin = default_registry().get("healthchecks")
    assert plugin is not None
    assert plugin.info.config_class is HealthchecksConfig
    assert plugin.info.user_delivery is False
    assert "Healthchecks" in plugin.info.description


def test_the_repr_shows_the_host_and_never_the_check() -> None:
    config = validate()
    assert repr(config) == (
        "HealthchecksConfig(ping_url='https://hc-ping.com', signals={'backup_started': "
        "'start', 'backup_success': 'success', 'backup_failure': 'fail'}, run_id=True, "
        "body_limit=100000, timeout=10.0)"
    )


@pytest.mark.parametrize(
    ("url", "signal", "rid", "expected"),
    [
        (URL, Signal.SUCCESS, None, URL),
        (URL + "/", Signal.FAIL, None, URL + "/fail"),
        (URL, Signal.START, "r-1", URL + "/start?rid=r-1"),
        (URL, Signal.LOG, None, URL + "/log"),
        (
            "https://hc-ping.com/fqOOd6-F4MMNuCEnzTU01w/db-backup?create=1",
            Signal.FAIL,
            "r-2",
            "https://hc-ping.com/fqOOd6-F4MMNuCEnzTU01w/db-backup/fail?create=1&rid=r-2",
        ),
        (
            f"http://hc.example.com:8000/ping/{CHECK}#x",
            Signal.SUCCESS,
            None,
            f"http://hc.example.com:8000/ping/{CHECK}",
        ),
    ],
)
def test_the_url_of_each_signal(url: str, signal: Signal, rid: str | None, expected: str) -> None:
    assert validate(ping_url=url).url(signal, rid).reveal() == expected


def test_signals_replace_the_default_table() -> None:
    config = validate(signals={"restore_failure": "log", "backup_failure": "fail"})
    assert config.signals == {"restore_failure": Signal.LOG, "backup_failure": Signal.FAIL}
    assert validate(signals={}).signals == {}


def test_a_ping_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HC_URL", URL)
    config = validate(ping_url={"env": "HC_URL"})
    assert config.ping_url.reveal() == URL
    assert config.ping_url.source == "env HC_URL"


@pytest.mark.parametrize(
    ("url", "line"),
    [
        ("hc-ping.com/" + CHECK, "ping_url: must start with https:// or http:// (got no scheme)"),
        (
            "ftp://hc-ping.com/" + CHECK,
            "ping_url: must start with https:// or http:// (got ftp://)",
        ),
        (
            "https://hc-ping.com/",
            "ping_url: has no check in its path: copy the check's ping URL, e.g. "
            "https://hc-ping.com/<uuid> or https://hc-ping.com/<ping-key>/<slug>",
        ),
        (
            URL + "/fail",
            "ping_url: must be the check's ping URL without /fail: the channel adds /start, "
            "/fail or /log itself",
        ),
        (
            URL + "/start",
            "ping_url: must be the check's ping URL without /start: the channel adds /start, "
            "/fail or /log itself",
        ),
        (
            URL + "/1",
            "ping_url: must be the check's ping URL without /<exit-status>: the channel adds "
            "/start, /fail or /log itself",
        ),
        (
            URL + "?rid=123e4567-e89b-12d3-a456-426614174000",
            "ping_url: must not carry rid=: the channel sets the run id itself (see run_id)",
        ),
    ],
)
def test_bad_ping_urls_are_refused_unseen(url: str, line: str) -> None:
    assert errors(ping_url=url) == [line]


def test_a_slug_named_like_a_signal_is_a_slug() -> None:
    """Only after a UUID is /fail a signal: ``<ping-key>/log`` is the check slugged log."""
    config = validate(ping_url="https://hc-ping.com/fqOOd6-F4MMNuCEnzTU01w/log")
    assert config.url(Signal.SUCCESS, None).reveal().endswith("/fqOOd6-F4MMNuCEnzTU01w/log")


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (
            {"signals": {"backup_failure": "down"}},
            "signals.backup_failure: must be one of start, success, fail, log (got 'down')",
        ),
        (
            {"signals": {"backup failure": "fail"}},
            "signals: 'backup failure' is not an event type: 1 to 100 letters, digits and "
            "_ . : - (e.g. backup_failure)",
        ),
        ({"signals": ["backup_failure"]}, "signals: must be a table (got ['backup_failure'])"),
        ({"body_limit": -1}, "body_limit: must be between 0 and 1000000 (got -1)"),
        ({"timeout": 0}, "timeout: must be greater than 0 (got 0.0)"),
        ({"run_id": "yes"}, "run_id: must be true or false (got 'yes')"),
    ],
)
def test_bad_values(options: dict[str, Any], line: str) -> None:
    assert errors(**options) == [line]


def test_errors_are_located_under_the_channel_in_a_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "channels": {"hc": {"type": "healthchecks", "ping_url": URL, "signal": {}}},
                "routing": {"channels": ["hc"]},
            }
        )
    assert [str(i) for i in info.value.issues] == [
        "channels.hc.signal: unknown key; did you mean 'signals'?"
    ]


def test_a_missing_ping_url_says_how_to_write_it() -> None:
    plugin = default_registry().get("healthchecks")
    assert plugin is not None
    with pytest.raises(ConfigError) as info:
        plugin.validate_config({})
    assert [str(i) for i in info.value.issues] == [
        "ping_url: required, not set (the check's ping URL, a secret: its UUID (or ping key) "
        'is the credential); e.g. ping_url = { env = "HEALTHCHECKS_PING_URL" }'
    ]
