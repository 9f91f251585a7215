"""Secrets never show: not in repr, str, format, errors, logs, pickles."""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbnotify.config.load import load_config
from dbnotify.errors import ConfigError
from dbnotify.secrets import MASK, Secret

VALUE = "hunter2-Sup3rS3cret"


def test_repr_str_format_never_show_the_value() -> None:
    secret = Secret(VALUE, source="env SMTP_PASSWORD")
    assert repr(secret) == "Secret(********, source='env SMTP_PASSWORD')"
    assert str(secret) == MASK == "********"
    assert f"{secret}" == MASK
    assert f"{secret!r}" == repr(secret)
    assert f"{secret:>30}" == MASK
    assert format(secret, "s") == MASK
    assert "%s" % secret == MASK  # noqa: UP031 - the old way must hide it too
    assert "{}".format(secret) == MASK  # noqa: UP032
    assert VALUE not in repr([secret, {"pw": secret}])


def test_reveal_gives_the_value() -> None:
    assert Secret(VALUE).reveal() == VALUE
    assert Secret(VALUE).source == "literal"


def test_equality_compares_values_without_showing_them() -> None:
    assert Secret(VALUE) == Secret(VALUE, source="file /x")
    assert Secret(VALUE) != Secret("other")
    assert Secret(VALUE) != VALUE
    assert hash(Secret(VALUE)) == hash(Secret(VALUE))


def test_secret_cannot_be_pickled_and_copies_stay_masked() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE))
    secret = Secret(VALUE)
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"password": secret})["password"] is secret


def test_logging_a_secret_shows_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("dbnotify.test").info("password is %s / %r", Secret(VALUE), Secret(VALUE))
    assert VALUE not in caplog.text
    assert "password is ******** / Secret(********, source='literal')" in caplog.text


def test_email_config_repr_hides_the_password(email_channel: Callable[..., dict[str, Any]]) -> None:
    config = load_config(
        {"channels": {"ops-mail": email_channel(user="dbackup@example.com", password=VALUE)}}
    )
    channel = config.channels["ops-mail"]
    for text in (
        repr(config),
        str(config),
        repr(channel),
        repr(channel.config),
        str(channel.config),
        f"{channel.config}",
    ):
        assert VALUE not in text
    assert channel.config.password.reveal() == VALUE
    assert "user='dbackup@example.com'" in repr(channel.config)


@pytest.mark.parametrize(
    "overrides",
    [
        # user without password, and the other way round: a cross-field error
        {"password": VALUE},
        # a secret beside errors in other fields
        {"user": "u", "password": VALUE, "port": 0, "security": "nope"},
        # a misspelt key that holds the secret
        {"user": "u", "pasword": VALUE},
        # a secret in the wrong shape
        {"user": "u", "password": {"value": VALUE}},
        {"user": "u", "password": [VALUE]},
        # plaintext AUTH refused
        {"user": "u", "password": VALUE, "security": "none"},
    ],
)
def test_config_errors_about_a_secret_never_contain_it(
    overrides: dict[str, Any], email_channel: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"channels": {"ops-mail": email_channel(**overrides)}})
    assert VALUE not in str(info.value)
    assert VALUE not in repr(info.value)
    assert all(VALUE not in i.message for i in info.value.issues)


def test_password_without_user_names_the_field(
    email_channel: Callable[..., dict[str, Any]],
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"channels": {"ops-mail": email_channel(password=VALUE)}})
    assert [str(i) for i in info.value.issues] == [
        "channels.ops-mail.user: required when password is set; set both, or neither"
    ]


def test_env_and_file_errors_never_show_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, email_channel: Callable[..., dict[str, Any]]
) -> None:
    monkeypatch.setenv("DBN_TEST_OTHER", VALUE)  # a value the process has, and must not leak
    monkeypatch.delenv("DBN_TEST_MISSING", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "channels": {
                    "a": email_channel(user="u", password={"env": "DBN_TEST_MISSING"}),
                    "b": email_channel(user="u", password={"file": str(tmp_path / "missing")}),
                    "c": email_channel(password={"env": "DBN_TEST_OTHER"}),  # user missing
                }
            }
        )
    text = str(info.value)
    assert VALUE not in text
    assert "DBN_TEST_MISSING" in text
    assert str(tmp_path / "missing") in text


def test_secret_read_from_file_is_not_shown_in_errors(
    tmp_path: Path, email_channel: Callable[..., dict[str, Any]]
) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(VALUE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(
            {"channels": {"m": email_channel(password={"file": str(secret_file)}, port=99999)}}
        )
    assert VALUE not in str(info.value)


def test_secret_is_opaque_to_asdict_and_unstructure() -> None:
    import attrs
    import cattrs

    @attrs.frozen
    class Holder:
        password: Secret

    holder = Holder(Secret("hunter2"))
    assert "hunter2" not in repr(attrs.asdict(holder))
    assert "hunter2" not in repr(cattrs.unstructure(holder))
