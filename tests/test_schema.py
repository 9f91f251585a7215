"""``dbnotify schema``: the JSON Schema a host draws its "Add Notification" form from."""

from __future__ import annotations

import json

import attrs
import jsonschema
import pytest

from dbnotify.channel import Duration, in_range, non_empty, positive, setting
from dbnotify.schema import object_schema


@pytest.fixture
async def email_schema(cli) -> dict:
    run = await cli("schema", "email")
    assert run.code == 0, run.err
    return json.loads(run.out)


async def test_email_schema_describes_every_key_and_marks_secrets(email_schema: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(email_schema)
    props = email_schema["properties"]
    # a preset fills in host (but postfix, which names no server): required only without one
    assert email_schema["required"] == ["type", "from", "to"]
    assert email_schema["allOf"][0] == {
        "if": {
            "properties": {"preset": {"enum": ["gmail", "sendgrid", "mailgun", "ses", "mailtrap"]}},
            "required": ["preset"],
        },
        "else": {"required": ["host"]},
    }
    assert props["port"]["minimum"] == 1
    assert props["port"]["maximum"] == 65535
    assert props["timeout"]["exclusiveMinimum"] == 0
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


@attrs.frozen
class Block:
    """One field for each of the core's validators."""

    port: int = setting(default=1, validator=in_range(1, 65535), description="p")
    timeout: float = setting(default=1.0, validator=positive, description="t")
    names: tuple[str, ...] = setting(
        default=("a",), validator=attrs.validators.and_(non_empty), description="n"
    )
    wait: Duration = setting(default=Duration(1.0), description="w")
    level: int | None = setting(
        default=None, validator=attrs.validators.optional(in_range(0, 9)), description="l"
    )


def test_the_core_validators_carry_their_limits_into_the_schema() -> None:
    props = object_schema(Block)["properties"]
    assert props["port"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "description": "p",
        "default": 1,
    }
    assert props["timeout"]["exclusiveMinimum"] == 0
    assert props["level"]["maximum"] == 9
    assert props["names"]["minItems"] == 1
    assert "minLength" not in props["names"]
    wait = {"$schema": "https://json-schema.org/draft/2020-12/schema", **props["wait"]}
    for good in (1, 0.5, "30s", "0.5m", " 2 d "):
        jsonschema.validate(good, wait)
    for bad in (0, -1, "0s", "0.0m", "00h", "5", "5 w"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, wait)
