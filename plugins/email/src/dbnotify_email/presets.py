"""Provider presets: host, port and security as the Email (SMTP) page lists them.

``preset = "gmail"`` fills what the provider documents; keys written in the
configuration win over the preset's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dbnotify.channel import ConfigError, ConfigIssue, did_you_mean

PRESETS: dict[str, dict[str, Any]] = {
    "gmail": {"host": "smtp.gmail.com", "port": 587, "security": "starttls"},
    "sendgrid": {"host": "smtp.sendgrid.net", "port": 587, "security": "starttls"},
    "mailgun": {"host": "smtp.mailgun.org", "port": 587, "security": "starttls"},
    "ses": {"port": 587, "security": "starttls"},
    "mailtrap": {"host": "sandbox.smtp.mailtrap.io", "port": 2525, "security": "starttls"},
    "postfix": {"port": 587, "security": "starttls"},
}
SES_DEFAULT_REGION = "us-east-1"
_REGION = re.compile(r"-*[A-Za-z0-9][A-Za-z0-9-]*")
REGION_PATTERN = "^" + _REGION.pattern + "$"

SUPPLIES_HOST: dict[str, Any] = {
    "properties": {"preset": {"enum": [n for n in PRESETS if n != "postfix"]}},
    "required": ["preset"],
}
"""The blocks whose preset fills in ``host``, for ``dbnotify schema``: all but postfix,
which names no server."""
SCHEMA_RULES: tuple[dict[str, Any], ...] = (
    {
        "if": {"not": {"properties": {"preset": {"const": "ses"}}, "required": ["preset"]}},
        "then": {"not": {"required": ["region"]}},
    },
)
"""What :func:`apply` refuses across keys: ``region`` only with ``preset = "ses"``."""


def apply(options: Mapping[str, Any]) -> dict[str, Any]:
    """The block with its preset's values filled in (and ``preset``/``region`` removed)."""
    result = dict(options)
    name = result.pop("preset", None)
    region = result.pop("region", None)
    if name is None:
        if region is not None:
            raise ConfigError([ConfigIssue("region", 'only used with preset = "ses"')])
        return result
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(
            [
                ConfigIssue(
                    "preset",
                    f"unknown preset {name!r}"
                    + (did_you_mean(name, PRESETS) if isinstance(name, str) else "")
                    + f" (known: {', '.join(PRESETS)})",
                )
            ]
        )
    preset = dict(PRESETS[name])
    if name == "ses":
        chosen = region if region is not None else SES_DEFAULT_REGION
        if not isinstance(chosen, str) or not _REGION.fullmatch(chosen):
            raise ConfigError([ConfigIssue("region", f"not an AWS region name (got {chosen!r})")])
        preset["host"] = f"email-smtp.{chosen}.amazonaws.com"
    elif region is not None:
        raise ConfigError([ConfigIssue("region", 'only used with preset = "ses"')])
    if name == "postfix" and "host" not in result:
        raise ConfigError(
            [
                ConfigIssue(
                    "host", 'required with preset = "postfix", e.g. host = "mail.example.com"'
                )
            ]
        )
    return {**preset, **result}
