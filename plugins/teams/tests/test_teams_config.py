"""The Teams channel's configuration block."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from dbnotify import ConfigError, Secret
from dbnotify.schema import channel_schema
from dbnotify_teams.plugin import channel_info, validate_config
from dbnotify_teams.settings import TeamsConfig

URL = (
    "https://contoso.webhook.office.com/webhookb2/11111111-2222-3333-4444-555555555555@"
    "66666666-7777-8888-9999-000000000000/IncomingWebhook/SECRETSECRETSECRET/"
    "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)


def errors(options: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(options)
    return [str(issue) for issue in caught.value.issues]


def test_defaults_and_repr() -> None:
    config = validate_config({"webhook_url": URL})
    assert isinstance(config, TeamsConfig)
    assert config.webhook_url == Secret(URL)
    assert repr(config) == "TeamsConfig(webhook_url='https://contoso.webhook.office.com')"


def test_channel_info() -> None:
    info = channel_info()
    assert (info.config_class, info.user_delivery) == (TeamsConfig, False)


def test_unknown_key_suggests_the_right_one() -> None:
    assert errors({"webhook_url": URL, "webhookurl": URL}) == [
        "webhookurl: unknown key; did you mean 'webhook_url'?"
    ]


def test_missing_url() -> None:
    assert errors({}) == [
        "webhook_url: required, not set (the Incoming Webhook connector's URL, a secret: it "
        'carries the webhook\'s token); e.g. webhook_url = { env = "TEAMS_WEBHOOK_URL" }'
    ]


def test_bad_scheme() -> None:
    found = errors({"webhook_url": "outlook.office.com/webhook/SECRET"})
    assert found == ["webhook_url: must start with https:// or http:// (got no scheme)"]


@pytest.mark.parametrize(
    "url",
    [
        "https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/"
        "invoke?api-version=2016-06-01&sig=SECRET",
        "https://default0123.ab.environment.api.powerplatform.com:443/powerautomate/"
        "automations/direct/workflows/abc/triggers/manual/paths/invoke?sig=SECRET",
    ],
)
def test_workflows_urls_are_pointed_to_the_webhook_channel(url: str) -> None:
    found = errors({"webhook_url": url})
    assert found == [
        "webhook_url: this is a Workflows (Power Automate) URL, and Workflows take Adaptive "
        'Cards only, not the MessageCard this channel sends; use a channel of type "webhook" '
        "with the Adaptive Card payload shown in the Teams channel's documentation"
    ]
    assert "SECRET" not in found[0]


def test_schema_for_host_forms() -> None:
    schema = channel_schema("teams", channel_info())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["type", "webhook_url"]
    props = schema["properties"]
    assert [k for k, v in props.items() if v.get("x-secret")] == ["webhook_url"]
    assert all(p.get("description") for p in props.values())
    example = {"type": "teams", "webhook_url": {"env": "TEAMS_WEBHOOK_URL"}}
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError, match="was unexpected"):
        jsonschema.validate({**example, "webhook_uri": "x"}, schema)
