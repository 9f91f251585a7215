"""The Uptime Kuma channel's configuration: what is accepted, and every error word for
word (none of them shows the push URL: its token is the credential)."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify import ConfigError, Secret, load_config
from dbnotify.plugins import default_registry
from dbnotify_uptime_kuma.settings import Beat, UptimeKumaConfig

TOKEN = "pK3vR8sT2wX9yZ4a"
URL = f"https://kuma.example.com/api/push/{TOKEN}?status=up&msg=OK&ping="


def validate(**options: Any) -> UptimeKumaConfig:
    plugin = default_registry().get("uptime-kuma")
    assert plugin is not None, default_registry().failures
    config = plugin.validate_config({"push_url": URL, **options})
    assert isinstance(config, UptimeKumaConfig)
    return config


def errors(**options: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(**options)
    lines = [str(issue) for issue in info.value.issues]
    for line in lines:
        assert TOKEN not in line
    return lines


def test_defaults() -> None:
    config = validate()
    assert config.push_url == Secret(URL)
    assert config.token == TOKEN
    assert config.signals == {"backup_success": Beat.UP, "backup_failure": Beat.DOWN}
    assert config.duration_as_ping is True
    assert config.timeout == 10.0


def test_plugin_is_listed_without_user_delivery() -> None:
    plugin = default_registry().get("uptime-kuma")
    assert plugin is not None
    assert plugin.info.config_class is UptimeKumaConfig
    assert plugin.info.user_delivery is False
    assert "Uptime Kuma" in plugin.info.description


def test_the_repr_shows_the_host_and_never_the_token() -> None:
    assert repr(validate()) == (
        "UptimeKumaConfig(push_url='https://kuma.example.com', signals={'backup_success': "
        "'up', 'backup_failure': 'down'}, duration_as_ping=True, timeout=10.0)"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (URL, f"https://kuma.example.com/api/push/{TOKEN}?status=down&msg=x+y&ping=83000"),
        (
            f"http://10.0.0.5:3001/kuma/api/push/{TOKEN}/",
            f"http://10.0.0.5:3001/kuma/api/push/{TOKEN}?status=down&msg=x+y&ping=83000",
        ),
    ],
)
def test_the_pasted_query_is_replaced_and_a_path_prefix_kept(url: str, expected: str) -> None:
    assert validate(push_url=url).url(Beat.DOWN, "x y", 83000).reveal() == expected


def test_without_a_ping_the_parameter_is_empty() -> None:
    assert validate().url(Beat.UP, "OK", None).reveal().endswith("?status=up&msg=OK&ping=")


def test_signals_replace_the_default_table() -> None:
    config = validate(signals={"restore_failure": "down"})
    assert config.signals == {"restore_failure": Beat.DOWN}


@pytest.mark.parametrize(
    ("url", "line"),
    [
        (
            "kuma.example.com/api/push/x",
            "push_url: must start with https:// or http:// (got no scheme)",
        ),
        (
            "https://kuma.example.com/dashboard/7",
            "push_url: must be a push monitor's URL, .../api/push/<token> (Uptime Kuma shows it "
            "on the monitor's page, monitor type Push)",
        ),
        (
            "https://kuma.example.com/api/push/",
            "push_url: must be a push monitor's URL, .../api/push/<token> (Uptime Kuma shows it "
            "on the monitor's page, monitor type Push)",
        ),
        (
            f"https://kuma.example.com/api/push/{TOKEN}/extra",
            "push_url: must be a push monitor's URL, .../api/push/<token> (Uptime Kuma shows it "
            "on the monitor's page, monitor type Push)",
        ),
    ],
)
def test_bad_push_urls_are_refused_unseen(url: str, line: str) -> None:
    assert errors(push_url=url) == [line]


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (
            {"signals": {"backup_failure": "fail"}},
            "signals.backup_failure: must be one of up, down (got 'fail')",
        ),
        (
            {"signals": {"": "up"}},
            "signals: '' is not an event type: 1 to 100 letters, digits and _ . : - "
            "(e.g. backup_failure)",
        ),
        ({"duration_as_ping": 1}, "duration_as_ping: must be true or false (got 1)"),
        ({"timeout": -2}, "timeout: must be greater than 0 (got -2.0)"),
    ],
)
def test_bad_values(options: dict[str, Any], line: str) -> None:
    assert errors(**options) == [line]


def test_errors_are_located_under_the_channel_in_a_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "channels": {"kuma": {"type": "uptime-kuma", "pushurl": URL}},
                "routing": {"channels": ["kuma"]},
            }
        )
    assert [str(i) for i in info.value.issues] == [
        "channels.kuma.pushurl: unknown key; did you mean 'push_url'?",
        "channels.kuma.push_url: required, not set (the push monitor's URL, a secret: its "
        'token is the credential); e.g. push_url = { env = "UPTIME_KUMA_PUSH_URL" }',
    ]
