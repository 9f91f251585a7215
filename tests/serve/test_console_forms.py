"""The console's channel forms, drawn from the email channel's schema (the document
``dbnotify schema email`` prints), and read back into a channel's block."""

from __future__ import annotations

from typing import Any

import pytest

from dbnotify.plugins import default_registry
from dbnotify.schema import channel_schema
from dbnotify.serve.console.forms import FormField, form_fields, read_block, shown_values


@pytest.fixture(scope="module")
def fields() -> dict[str, FormField]:
    plugin = default_registry().get("email")
    assert plugin is not None
    drawn = form_fields(channel_schema(plugin.type, plugin.info))
    assert drawn[0].key == "preset"  # the preset comes first: it fills others
    return {f.key: f for f in drawn}


def test_each_key_gets_the_field_its_schema_says(fields: dict[str, FormField]) -> None:
    assert "type" not in fields
    preset = fields["preset"]
    assert preset.kind == "select"
    assert preset.options == ("gmail", "sendgrid", "mailgun", "ses", "mailtrap", "postfix")
    security = fields["security"]
    assert (security.kind, security.options, security.default) == (
        "select",
        ("none", "ssl", "starttls"),
        "starttls",
    )
    assert fields["to"].kind == "list"
    assert fields["to"].required
    assert fields["port"].kind == "integer"
    assert (fields["port"].minimum, fields["port"].maximum) == (1, 65535)
    assert fields["timeout"].kind == "number"
    assert fields["tls_verify"].kind == "bool"
    assert fields["tls_verify"].default == "true"
    assert fields["from"].help == "Sender address, optionally with a name."


def test_a_key_a_preset_supplies_says_so(fields: dict[str, FormField]) -> None:
    host = fields["host"]
    assert not host.required
    assert host.required_unless == "preset is gmail, sendgrid, mailgun, ses, mailtrap"


def test_secrets_are_password_fields_given_as_the_schema_allows(
    fields: dict[str, FormField],
) -> None:
    assert fields["password"].kind == "secret"
    assert fields["password"].options == ("value", "env", "file")
    assert fields["oauth2_token"].kind == "secret"
    assert fields["oauth2_token"].options == ("env", "file")  # { command } stays in the file


def test_the_form_reads_back_into_a_block(fields: dict[str, FormField]) -> None:
    form = {
        "f.host": " mail.example.com ",
        "f.port": "587",
        "f.to": "a@example.com, b@example.com; c@example.com",
        "f.cc": "",
        "f.tls_verify": "false",
        "f.timeout": "2.5",
        "f.password": "PASSWORD_ENV",
        "k.password": "env",
        "f.security": "",
    }
    block, problems = read_block(list(fields.values()), form)
    assert problems == []
    assert block == {
        "host": "mail.example.com",
        "port": 587,
        "to": ["a@example.com", "b@example.com", "c@example.com"],
        "tls_verify": False,
        "timeout": 2.5,
        "password": {"env": "PASSWORD_ENV"},
    }


def test_bad_values_are_named_and_a_secret_is_never_echoed(
    fields: dict[str, FormField],
) -> None:
    form = {
        "f.port": "smtp",
        "f.security": "tls",
        "f.password": "hunter2-hunter2",
        "k.password": "command",
    }
    _block, problems = read_block(list(fields.values()), form)
    found = {p.field: (p.value, p.fix) for p in problems}
    assert found["port"] == ("smtp", "a whole number, e.g. 587")
    assert found["security"] == ("tls", "choose one of: none, ssl, starttls")
    assert found["password"] == (None, "give it as one of: value, env, file")


def test_a_saved_channel_fills_its_form_but_never_its_secrets(
    fields: dict[str, FormField],
) -> None:
    settings: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "to": ["ops@example.com", "dba@example.com"],
        "tls_verify": True,
        "password": {"set": True},
    }
    assert shown_values(list(fields.values()), settings) == {
        "host": "127.0.0.1",
        "to": "ops@example.com, dba@example.com",
        "tls_verify": "true",
    }


def test_a_list_of_secrets_is_one_password_field() -> None:
    plugin = default_registry().get("apprise")
    assert plugin is not None
    (urls,) = [f for f in form_fields(channel_schema(plugin.type, plugin.info)) if f.key == "urls"]
    assert (urls.kind, urls.many) == ("secret", True)
    block, problems = read_block(
        [urls], {"f.urls": "json://a.example  mailto://b", "k.urls": "value"}
    )
    assert problems == []
    assert block == {"urls": ["json://a.example", "mailto://b"]}
