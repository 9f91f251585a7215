"""``dbnotify schema``: the JSON Schema a host draws its "Add Notification" form from."""

from __future__ import annotations

import json

import jsonschema
import pytest


@pytest.fixture
async def email_schema(cli) -> dict:
    run = await cli("schema", "email")
    assert run.code == 0, run.err
    return json.loads(run.out)


async def test_email_schema_describes_every_key_and_marks_secrets(email_schema: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(email_schema)
    props = email_schema["properties"]
    assert email_schema["required"] == ["type", "host", "from", "to"]
    assert props["security"] == {
        "type": "string",
        "enum": ["none", "ssl", "starttls"],
        "description": "none | ssl (implicit TLS) | starttls (required)",
        "default": "starttls",
    }
    assert props["password"]["writeOnly"] is True
    assert props["password"]["x-secret"] is True
    assert props["oauth2_token"]["x-secret"] is True
    assert "x-secret" not in props["user"]
    assert props["preset"]["enum"] == ["gmail", "sendgrid", "mailgun", "ses", "mailtrap", "postfix"]
    assert all(p.get("description") for p in props.values())


async def test_real_configurations_validate_against_the_schema(email_schema: dict) -> None:
    good = {
        "type": "email",
        "host": "smtp.example.com",
        "from": "DBackup <d@example.com>",
        "to": ["ops@example.com"],
        "password": {"env": "SMTP_PASSWORD"},
        "user": "d",
        "port": 587,
        "timeout": 10,
    }
    jsonschema.validate(good, email_schema)
    with pytest.raises(jsonschema.ValidationError, match="'hots' was unexpected"):
        jsonschema.validate({**good, "hots": "x"}, email_schema)
    with pytest.raises(jsonschema.ValidationError, match="'tls' is not one of"):
        jsonschema.validate({**good, "security": "tls"}, email_schema)


async def test_plugins_json_carries_each_schema_and_unknown_types_exit_2(cli) -> None:
    listed = json.loads((await cli("plugins", "--json")).out)
    email = next(c for c in listed["channels"] if c["type"] == "email")
    assert email["schema"]["title"] == "email"
    run = await cli("schema", "emial")
    assert run.code == 2
    assert "unknown channel type 'emial'; did you mean 'email'?" in run.err
