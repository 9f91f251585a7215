"""Loading configuration: the real email plugin, TOML files, every error at once."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NewType

import attrs
import pytest

from dbnotify.channel import make_converter, setting, structure
from dbnotify.config.load import load_config
from dbnotify.config.model import Config, DispatchSettings, RenderingSettings
from dbnotify.errors import ConfigError, ConfigIssue
from dbnotify.events import Condition, JobRule, NotifyUser
from dbnotify.plugins import PluginRegistry
from dbnotify.secrets import Secret

ISSUE_TOML = """
[channels.ops-mail]
type = "email"
host = "smtp.example.com"
port = 587
security = "starttls"
user = "dbackup@example.com"
password = { env = "SMTP_PASSWORD" }
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com", "dba@example.com"]

[routing]
channels = ["ops-mail"]

[routing.events.user_login]
enabled = true
notify_user = "also"
"""


def issues(raw: dict[str, Any] | Path, plugins: PluginRegistry | None = None) -> list[str]:
    """Every issue of a config that must fail, as the user reads them."""
    with pytest.raises(ConfigError) as info:
        load_config(raw, plugins)
    return [str(i) for i in info.value.issues]


def write(tmp_path: Path, text: str, name: str = "dbnotify.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- a good file ------------------------------------------------------------------------


def test_issue_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "app-pass-1234")
    config = load_config(write(tmp_path, ISSUE_TOML))
    assert isinstance(config, Config)
    assert list(config.channels) == ["ops-mail"]
    channel = config.channels["ops-mail"]
    assert (channel.name, channel.type) == ("ops-mail", "email")
    email = channel.config
    assert email.host == "smtp.example.com"
    assert email.effective_port == 587
    assert email.security.value == "starttls"
    assert email.user == "dbackup@example.com"
    assert email.password.reveal() == "app-pass-1234"
    assert email.password.source == "env SMTP_PASSWORD"
    assert str(email.from_) == "dbackup@example.com"
    assert email.from_.display_name == "DBackup"
    assert [str(t) for t in email.to] == ["ops@example.com", "dba@example.com"]
    assert config.routing.channels == ("ops-mail",)
    rule = config.routing.events["user_login"]
    assert rule.enabled is True
    assert rule.notify_user is NotifyUser.ALSO
    assert rule.channels is None
    # the sections not in the file have their defaults
    assert config.rendering == RenderingSettings()
    assert config.dispatch == DispatchSettings()
    assert config.jobs == {}
    assert config.routing.user_channel is None


def test_dict_and_toml_give_the_same_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, email_channel: Callable[..., dict[str, Any]]
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "app-pass-1234")
    raw = {
        "channels": {
            "ops-mail": email_channel(user="dbackup@example.com", password={"env": "SMTP_PASSWORD"})
        },
        "routing": {
            "channels": ["ops-mail"],
            "events": {"user_login": {"enabled": True, "notify_user": "also"}},
        },
    }
    from_dict = load_config(raw)
    from_file = load_config(write(tmp_path, ISSUE_TOML))
    assert from_dict.routing == from_file.routing
    assert repr(from_dict.channels["ops-mail"].config) == repr(
        from_file.channels["ops-mail"].config
    )


def test_all_sections(email_channel: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    config = load_config(
        {
            "channels": {
                "ops-mail": email_channel(),
                "dba-mail": email_channel(to="dba@example.com"),
            },
            "routing": {
                "channels": ["ops-mail"],
                "user_channel": "dba-mail",
                "events": {
                    "backup_failure": {"channels": ["ops-mail", "dba-mail"]},
                    "config_backup": {"enabled": True},
                },
            },
            "jobs": {
                "nightly-pg": {"channels": ["dba-mail"], "condition": "failure_only"},
                "hourly": {},
            },
            "rendering": {
                "subject_prefix": "[Backups]",
                "app_name": "Acme Backups",
                "timezone": "Europe/Berlin",
                "templates_dir": str(templates),
            },
            "dispatch": {"deadline": 5},
        }
    )
    assert config.routing.user_channel == "dba-mail"
    assert config.routing.events["backup_failure"].channels == ("ops-mail", "dba-mail")
    assert config.jobs["nightly-pg"] == JobRule(("dba-mail",), Condition.FAILURE_ONLY)
    assert config.jobs["hourly"] == JobRule(None, Condition.ALWAYS)
    assert config.rendering == RenderingSettings(
        "[Backups]", "Acme Backups", "Europe/Berlin", str(templates)
    )
    assert config.dispatch.deadline == 5.0
    assert isinstance(config.dispatch.deadline, float)


def test_custom_event_names_are_accepted(email_channel: Callable[..., dict[str, Any]]) -> None:
    config = load_config(
        {
            "channels": {"ops-mail": email_channel()},
            "routing": {
                "events": {
                    "disk_almost_full": {"channels": ["ops-mail"]},
                    "replication_lag": {"enabled": False},
                }
            },
        }
    )
    assert config.routing.events["disk_almost_full"].channels == ("ops-mail",)
    assert config.routing.events["replication_lag"].enabled is False


def test_empty_file_is_a_valid_config_without_channels(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.channels == {}
    assert config.routing.channels == ()


def test_to_as_one_string_is_split(email_channel: Callable[..., dict[str, Any]]) -> None:
    config = load_config({"channels": {"m": email_channel(to="ops@example.com; dba@example.com")}})
    assert [str(t) for t in config.channels["m"].config.to] == [
        "ops@example.com",
        "dba@example.com",
    ]


# --- errors: all at once, each with its path ---------------------------------------------


def test_port_out_of_range_is_pinned(email_channel: Callable[..., dict[str, Any]]) -> None:
    assert issues({"channels": {"ops-mail": email_channel(port=70000)}}) == [
        "channels.ops-mail.port: must be between 1 and 65535 (got 70000)"
    ]


def test_every_error_is_reported_at_once(
    tmp_path: Path, email_channel: Callable[..., dict[str, Any]]
) -> None:
    path = write(
        tmp_path,
        """
[channels.ops-mail]
type = "email"
host = "smtp.example.com"
port = 70000
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com"]
pasword = "s3cr3t-Pa55"

[routing]
channels = ["ops-mial"]

[routing.events.user_logn]
enabled = true

[routing.events.backup_success]
notify_user = "also"

[rendering]
timezone = "Mars/Olympus"

[dispatch]
deadline = "abc"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = [str(i) for i in info.value.issues]
    assert sorted(found) == sorted(
        [
            "rendering.timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as "
            "'UTC' or 'Europe/Berlin'",
            "dispatch.deadline: must be a number (got 'abc')",
            "channels.ops-mail.pasword: unknown key; did you mean 'password'?",
            "channels.ops-mail.port: must be between 1 and 65535 (got 70000)",
            "routing.channels[0]: no channel named 'ops-mial'; did you mean 'ops-mail'?",
            "routing.events.user_logn: unknown event type; did you mean 'user_login'? (custom "
            "event types are allowed, but this one looks like a typo)",
            "routing.events.backup_success.notify_user: only user_login and user_created can "
            "notify the user (got 'also')",
        ]
    )
    text = str(info.value)
    assert text.splitlines()[0] == "7 configuration errors:"
    assert all(line.startswith("  ") for line in text.splitlines()[1:])
    assert "s3cr3t-Pa55" not in text


def test_one_issue_is_singular() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"dispatch": {"deadline": 0}})
    assert str(info.value) == (
        "1 configuration error:\n  dispatch.deadline: must be greater than 0 (got 0.0)"
    )
    assert info.value.issues == (
        ConfigIssue("dispatch.deadline", "must be greater than 0 (got 0.0)"),
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"chanels": {}}, ["chanels: unknown key; did you mean 'channels'?"]),
        (
            {"routing": {"chanels": ["x"]}},
            ["routing.chanels: unknown key; did you mean 'channels'?"],
        ),
        (
            {"routing": {"events": {"user_login": {"notfy_user": "also"}}}},
            ["routing.events.user_login.notfy_user: unknown key; did you mean 'notify_user'?"],
        ),
        (
            {"jobs": {"nightly": {"conditon": "always"}}},
            ["jobs.nightly.conditon: unknown key; did you mean 'condition'?"],
        ),
        (
            {"rendering": {"colour": "red"}},
            [
                "rendering.colour: unknown key (known: subject_prefix, app_name, timezone, "
                "templates_dir)"
            ],
        ),
    ],
)
def test_unknown_keys(raw: dict[str, Any], expected: list[str]) -> None:
    assert issues(raw) == expected


def test_unknown_key_in_channel_block(email_channel: Callable[..., dict[str, Any]]) -> None:
    assert issues({"channels": {"ops-mail": email_channel(hots="x")}}) == [
        "channels.ops-mail.hots: unknown key; did you mean 'host'?"
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"dispatch": {"deadline": "abc"}}, "dispatch.deadline: must be a number (got 'abc')"),
        ({"dispatch": {"deadline": True}}, "dispatch.deadline: must be a number (got True)"),
        (
            {"routing": {"channels": "ops-mail"}},
            "routing.channels: must be a list (got 'ops-mail')",
        ),
        ({"routing": {"channels": [1]}}, "routing.channels[0]: must be a string (got 1)"),
        (
            {"routing": {"events": {"backup_success": {"enabled": "yes"}}}},
            "routing.events.backup_success.enabled: must be true or false (got 'yes')",
        ),
        ({"routing": {"events": []}}, "routing.events: must be a table (got [])"),
        ({"routing": 3}, "routing: must be a table (got 3)"),
        (
            {"rendering": {"subject_prefix": ["x"]}},
            "rendering.subject_prefix: must be a string (got ['x'])",
        ),
    ],
)
def test_type_errors(raw: dict[str, Any], expected: str) -> None:
    assert issues(raw) == [expected]


def test_integer_type_error_in_channel(email_channel: Callable[..., dict[str, Any]]) -> None:
    assert issues({"channels": {"ops-mail": email_channel(port="abc")}}) == [
        "channels.ops-mail.port: must be an integer (got 'abc')"
    ]


def test_long_values_are_shortened_in_messages() -> None:
    (issue,) = issues({"dispatch": {"deadline": "x" * 100}})
    assert issue == f"dispatch.deadline: must be a number (got '{'x' * 56}...)"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"routing": {"events": {"user_login": {"notify_user": "al"}}}},
            "routing.events.user_login.notify_user: must be one of none, also, only (got 'al'); "
            "did you mean 'also'?",
        ),
        (
            {"jobs": {"nightly": {"condition": "sometimes"}}},
            "jobs.nightly.condition: must be one of always, success_only, failure_only "
            "(got 'sometimes')",
        ),
        (
            {"jobs": {"nightly": {"condition": 1}}},
            "jobs.nightly.condition: must be one of always, success_only, failure_only (got 1)",
        ),
    ],
)
def test_enum_errors(raw: dict[str, Any], expected: str) -> None:
    assert issues(raw) == [expected]


def test_missing_required_keys_of_a_channel() -> None:
    assert issues({"channels": {"ops-mail": {"type": "email"}}}) == [
        "channels.ops-mail.host: required, not set (SMTP server hostname); "
        'e.g. host = "smtp.example.com"',
        "channels.ops-mail.from: required, not set (sender address, optionally with a "
        'name); e.g. from = "DBackup <dbackup@example.com>"',
        "channels.ops-mail.to: required, not set (recipient address(es): a list, or one "
        'string separated by commas or semicolons); e.g. to = ["ops@example.com"]',
    ]


def test_channel_without_type() -> None:
    assert issues({"channels": {"ops-mail": {"host": "smtp.example.com"}}}) == [
        'channels.ops-mail.type: required, not set; e.g. type = "email" (installed: email)'
    ]


def test_channel_with_unknown_type() -> None:
    assert issues({"channels": {"ops-mail": {"type": "emial"}}}) == [
        "channels.ops-mail.type: unknown channel type 'emial'; did you mean 'email'? "
        "(installed: email; channel types come from plugins such as dbnotify-email)"
    ]


def test_channel_that_is_not_a_table(email_channel: Callable[..., dict[str, Any]]) -> None:
    # the broken channel is reported where it is, not again as "no channel named"
    assert issues(
        {"channels": {"ops-mail": "smtp.example.com"}, "routing": {"channels": ["ops-mail"]}}
    ) == ["channels.ops-mail: must be a table (got 'smtp.example.com')"]


# --- secrets ---------------------------------------------------------------------------


def test_secret_from_literal(email_channel: Callable[..., dict[str, Any]]) -> None:
    config = load_config({"channels": {"m": email_channel(user="u", password="lit-Pa55")}})
    password = config.channels["m"].config.password
    assert isinstance(password, Secret)
    assert password.reveal() == "lit-Pa55"
    assert password.source == "literal"


def test_secret_from_env(
    monkeypatch: pytest.MonkeyPatch, email_channel: Callable[..., dict[str, Any]]
) -> None:
    monkeypatch.setenv("DBN_TEST_SMTP_PW", "env-Pa55")
    config = load_config(
        {"channels": {"m": email_channel(user="u", password={"env": "DBN_TEST_SMTP_PW"})}}
    )
    password = config.channels["m"].config.password
    assert password.reveal() == "env-Pa55"
    assert password.source == "env DBN_TEST_SMTP_PW"


def test_secret_from_file(tmp_path: Path, email_channel: Callable[..., dict[str, Any]]) -> None:
    secret_file = tmp_path / "smtp_password"
    secret_file.write_text("file-Pa55\n", encoding="utf-8")  # the newline is not the secret
    config = load_config(
        {"channels": {"m": email_channel(user="u", password={"file": str(secret_file)})}}
    )
    password = config.channels["m"].config.password
    assert password.reveal() == "file-Pa55"
    assert password.source == f"file {secret_file}"


def test_missing_env_var_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, email_channel: Callable[..., dict[str, Any]]
) -> None:
    monkeypatch.delenv("DBN_TEST_UNSET", raising=False)
    assert issues(
        {"channels": {"m": email_channel(user="u", password={"env": "DBN_TEST_UNSET"})}}
    ) == [
        "channels.m.password: environment variable DBN_TEST_UNSET is not set; export it, or "
        'use { file = "/path" } or a literal value'
    ]


def test_issue_example_without_its_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    assert issues(write(tmp_path, ISSUE_TOML)) == [
        "channels.ops-mail.password: environment variable SMTP_PASSWORD is not set; export "
        'it, or use { file = "/path" } or a literal value'
    ]


def test_missing_secret_file_names_the_path(
    tmp_path: Path, email_channel: Callable[..., dict[str, Any]]
) -> None:
    missing = tmp_path / "nope" / "smtp_password"
    block = email_channel(user="u", password={"file": str(missing)})
    assert issues({"channels": {"m": block}}) == [
        f"channels.m.password: cannot read secret file '{missing}': No such file or directory"
    ]


def test_secret_file_that_is_a_folder(
    tmp_path: Path, email_channel: Callable[..., dict[str, Any]]
) -> None:
    block = email_channel(user="u", password={"file": str(tmp_path)})
    (issue,) = issues({"channels": {"m": block}})
    assert issue == (
        f"channels.m.password: cannot read secret file '{tmp_path}': "
        "it is a directory, not a regular file"
    )


def test_secret_file_that_is_a_fifo_is_refused_without_waiting(
    tmp_path: Path, email_channel: Callable[..., dict[str, Any]]
) -> None:
    """Reading a FIFO waits for a writer: validate would hang."""
    fifo = tmp_path / "smtp_password"
    os.mkfifo(fifo)
    block = email_channel(user="u", password={"file": str(fifo)})
    found: list[list[str]] = []
    worker = threading.Thread(target=lambda: found.append(issues({"channels": {"m": block}})))
    worker.start()
    worker.join(5)
    while worker.is_alive():  # unblock each reader (each open waits) before failing
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(0.1)
    assert found == [
        [
            f"channels.m.password: cannot read secret file '{fifo}': "
            "it is a FIFO (named pipe), not a regular file"
        ]
    ]


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        (
            {"value": "inline-Pa55"},
            'must be a string, { env = "NAME" } or { file = "/path" } '
            "(got a table with keys value)",
        ),
        (
            {"env": "X", "file": "/y"},
            'must be a string, { env = "NAME" } or { file = "/path" } (got a table with keys env, '
            "file)",
        ),
        (1234, 'must be a string, { env = "NAME" } or { file = "/path" } (got int)'),
        (
            {"env": 12},
            'env must name an environment variable, e.g. { env = "SMTP_PASSWORD" } (got 12)',
        ),
    ],
)
def test_bad_secret_shapes(
    password: Any, expected: str, email_channel: Callable[..., dict[str, Any]]
) -> None:
    assert issues({"channels": {"m": email_channel(user="u", password=password)}}) == [
        f"channels.m.password: {expected}"
    ]


# --- references --------------------------------------------------------------------------


def test_routing_references_undefined_channels(
    email_channel: Callable[..., dict[str, Any]],
) -> None:
    assert issues(
        {
            "channels": {"ops-mail": email_channel()},
            "routing": {
                "channels": ["ops-mail", "ops-mial", "slack"],
                "events": {"backup_failure": {"channels": ["opsmail"]}},
            },
            "jobs": {"nightly-pg": {"channels": ["pager"]}},
        }
    ) == [
        "routing.channels[1]: no channel named 'ops-mial'; did you mean 'ops-mail'?",
        "routing.channels[2]: no channel named 'slack' (defined: ops-mail)",
        "routing.events.backup_failure.channels[0]: no channel named 'opsmail'; did you mean "
        "'ops-mail'?",
        "jobs.nightly-pg.channels[0]: no channel named 'pager' (defined: ops-mail)",
    ]


def test_routing_without_any_channel_defined() -> None:
    assert issues({"routing": {"channels": ["ops-mail"]}}) == [
        "routing.channels[0]: no channel named 'ops-mail' (defined: none)"
    ]


@pytest.mark.parametrize("event_type", ["backup_failure", "system_error", "disk_almost_full"])
def test_notify_user_on_a_non_user_event(
    event_type: str, email_channel: Callable[..., dict[str, Any]]
) -> None:
    assert issues(
        {
            "channels": {"m": email_channel()},
            "routing": {"events": {event_type: {"notify_user": "only"}}},
        }
    ) == [
        f"routing.events.{event_type}.notify_user: only user_login and user_created can "
        "notify the user (got 'only')"
    ]


def test_notify_user_none_is_fine_anywhere() -> None:
    config = load_config({"routing": {"events": {"backup_failure": {"notify_user": "none"}}}})
    assert config.routing.events["backup_failure"].notify_user is NotifyUser.NONE


def test_event_key_that_looks_like_a_typo() -> None:
    assert issues({"routing": {"events": {"user_logn": {"enabled": True}}}}) == [
        "routing.events.user_logn: unknown event type; did you mean 'user_login'? (custom "
        "event types are allowed, but this one looks like a typo)"
    ]


def test_user_channel_undefined(email_channel: Callable[..., dict[str, Any]]) -> None:
    assert issues(
        {"channels": {"ops-mail": email_channel()}, "routing": {"user_channel": "ops-mial"}}
    ) == ["routing.user_channel: no channel named 'ops-mial'; did you mean 'ops-mail'?"]


def test_user_channel_must_deliver_to_addresses(
    registry: PluginRegistry, fake_channel: Any, email_channel: Callable[..., dict[str, Any]]
) -> None:
    registry.register("chat", fake_channel())
    raw = {
        "channels": {"ops-mail": email_channel(), "team-chat": {"type": "chat"}},
        "routing": {"channels": ["team-chat"], "user_channel": "team-chat"},
    }
    assert issues(raw, registry) == [
        "routing.user_channel: channel 'team-chat' (type chat) cannot deliver to a user's "
        "address; name an email channel"
    ]
    raw["routing"]["user_channel"] = "ops-mail"
    assert load_config(raw, registry).routing.user_channel == "ops-mail"


# --- one bad part does not hide the others ------------------------------------------------


def test_bad_section_does_not_hide_other_sections(
    email_channel: Callable[..., dict[str, Any]],
) -> None:
    assert issues(
        {
            "channels": {"ops-mail": email_channel(security="tls"), "dba-mail": email_channel()},
            "routing": {"channels": ["ops-mail", "dba-mial"]},
            "jobs": {"nightly": {"condition": "never"}},
            "rendering": {"timezone": "Nowhere/Land"},
            "dispatch": {"deadline": -1},
        }
    ) == [
        "jobs.nightly.condition: must be one of always, success_only, failure_only (got 'never')",
        "rendering.timezone: unknown time zone 'Nowhere/Land'; use an IANA name such as "
        "'UTC' or 'Europe/Berlin'",
        "dispatch.deadline: must be greater than 0 (got -1.0)",
        # the email plugin words its own security message; core only places it here
        *issues({"channels": {"ops-mail": email_channel(security="tls")}}),
        "routing.channels[1]: no channel named 'dba-mial'; did you mean 'dba-mail'?",
    ]


def test_bad_key_does_not_hide_reference_errors_beside_it(
    email_channel: Callable[..., dict[str, Any]],
) -> None:
    assert issues(
        {
            "channels": {"ops-mail": email_channel()},
            "routing": {
                "channels": ["ops-mial"],
                "events": {
                    "user_login": {"notify_user": "al"},
                    "backup_failure": {"channels": ["slack"]},
                },
            },
            "jobs": {"nightly": {"condition": "never"}, "hourly": {"channels": ["pager"]}},
        }
    ) == [
        "routing.events.user_login.notify_user: must be one of none, also, only (got 'al'); "
        "did you mean 'also'?",
        "jobs.nightly.condition: must be one of always, success_only, failure_only (got 'never')",
        "routing.channels[0]: no channel named 'ops-mial'; did you mean 'ops-mail'?",
        "routing.events.backup_failure.channels[0]: no channel named 'slack' (defined: ops-mail)",
        "jobs.hourly.channels[0]: no channel named 'pager' (defined: ops-mail)",
    ]


def test_two_bad_channels_are_both_reported(email_channel: Callable[..., dict[str, Any]]) -> None:
    assert issues({"channels": {"a": email_channel(port=0), "b": email_channel(port="x")}}) == [
        "channels.a.port: must be between 1 and 65535 (got 0)",
        "channels.b.port: must be an integer (got 'x')",
    ]


# --- files -------------------------------------------------------------------------------


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[channels.ops-mail\ntype = 'email'\n")
    (issue,) = issues(path)
    assert issue.startswith(f"{path}: not valid TOML: ")
    assert "line 1" in issue


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert issues(path) == [f"configuration file '{path}' not found"]


def test_config_path_as_string(tmp_path: Path) -> None:
    path = write(tmp_path, "[dispatch]\ndeadline = 2\n")
    assert load_config(str(path)).dispatch.deadline == 2.0


def test_templates_dir_must_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    assert issues({"rendering": {"templates_dir": missing}}) == [
        f"rendering.templates_dir: folder '{missing}' does not exist"
    ]


def test_config_error_text_and_prefixing() -> None:
    error = ConfigError([ConfigIssue("a.b", "bad"), ConfigIssue("", "whole file")])
    assert str(error) == "2 configuration errors:\n  a.b: bad\n  whole file"
    assert [str(i) for i in error.prefixed("channels.x").issues] == [
        "channels.x.a.b: bad",
        "channels.x: whole file",
    ]


def test_a_typo_in_an_outbox_retry_event_type_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            {
                "outbox": {
                    "path": str(tmp_path / "o.sqlite"),
                    "retry": {"user_logn": {"max_age": "1h"}, "my_event": {}},
                }
            }
        )
    assert [str(i) for i in caught.value.issues] == [
        "outbox.retry.user_logn: unknown event type; did you mean 'user_login'? (custom event "
        "types are allowed, but this one looks like a typo)"
    ]


# --- structuring with a converter of one's own ----------------------------------------

Upper = NewType("Upper", str)


@attrs.frozen
class Shouted:
    word: Upper = setting(description="a word")


def _upper(value: Any, _cl: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a word (got {value!r})")
    return value.upper()


def test_a_hook_on_a_converter_of_ones_own_is_seen_there_alone() -> None:
    mine = make_converter()
    mine.register_structure_hook(Upper, _upper)
    assert structure(Shouted, {"word": "hi"}, converter=mine) == Shouted(Upper("HI"))
    assert structure(Shouted, {"word": "hi"}) == Shouted(Upper("hi"))
    assert structure(Shouted, {"word": "hi"}, converter=make_converter()) == Shouted(Upper("hi"))
    with pytest.raises(ConfigError) as caught:
        structure(Shouted, {"word": 3, "wrod": "x"}, converter=mine)
    assert [str(i) for i in caught.value.issues] == [
        "wrod: unknown key; did you mean 'word'?",
        "word: must be a word (got 3)",
    ]
