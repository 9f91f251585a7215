"""The Microsoft Teams channel's configuration block."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs

from dbnotify.channel import Secret, setting
from dbnotify.http import check_url, where

WORKFLOWS_HOSTS = ("logic.azure.com", "powerplatform.com", "powerautomate.com")
"""Where Power Automate (Workflows) webhook URLs live: they take Adaptive Cards only."""


def is_workflows_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in WORKFLOWS_HOSTS)


def _connector_url(inst: Any, attribute: attrs.Attribute[Any], value: Secret) -> None:
    check_url(inst, attribute, value)
    if is_workflows_url(value.reveal()):
        raise ValueError(
            "this is a Workflows (Power Automate) URL, and Workflows take Adaptive Cards "
            "only, not the MessageCard this channel sends; use a channel of type "
            '"webhook" with the Adaptive Card payload shown in the Teams channel\'s '
            "documentation"
        )


@attrs.frozen(repr=False)
class TeamsConfig:
    webhook_url: Secret = setting(
        validator=_connector_url,
        description="the Incoming Webhook connector's URL, a secret: it carries the "
        "webhook's token",
        example='{ env = "TEAMS_WEBHOOK_URL" }',
    )

    def __repr__(self) -> str:
        return f"TeamsConfig(webhook_url={where(self.webhook_url.reveal())!r})"
