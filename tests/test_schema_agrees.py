"""``dbnotify schema TYPE`` and ``validate`` accept and refuse the same blocks.

A host draws its form from the schema: a block the form lets through must load, and one
it refuses must not. Each test generates blocks from a seeded ``random.Random`` (keys of
the schema, valid values, boundary numbers, wrong types) and checks both on every one.

Left out of the generators, because JSON Schema cannot say them:

- secrets as ``{ env = ... }`` or ``{ file = ... }``, and email's ``tls_ca_file``,
  ``tls_client_cert`` and ``tls_client_key``: they depend on the environment or on
  files, which only ``validate`` can read;
- the content of an address (email's ``from``, ``to``, ``cc``, ``bcc``, ``reply_to``):
  ``Mailbox.parse`` asks email-validator; the schema only requires an ``@``;
- the content of a URL (webhook's ``webhook_url``, ntfy's and gotify's ``server_url``,
  healthchecks' ``ping_url``, uptime-kuma's ``push_url``):
  ``urlsplit`` decides; and of a secret written as a literal (webhook's ``auth_header``,
  ntfy's ``access_token``, gotify's ``app_token``: printable ASCII), whose schema is the
  one every secret shares;
- webhook's ``payload``, a Jinja template that ``validate`` compiles; its header names
  that are forbidden (``Host``) or given twice in another case; its ``method`` in
  lower case, which ``validate`` takes (``post``) and the schema lists as ``POST``;
- ``null`` and integral floats (``587.0``): TOML has no null, and JSON Schema counts
  ``587.0`` as an integer where TOML's ``587.0`` is a float that a port refuses;
- ``nan`` and ``inf``: JSON has neither.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jsonschema
import pytest

from dbnotify.channel import ConfigError

BLOCKS = 1500
"""Blocks generated per channel type."""

Values = tuple[Sequence[Any], Sequence[Any]]
"""For one key: (values validate accepts alone, values it refuses)."""

TIMES: Values = ([0.001, 1, 30, 30.5, 1e9], [-1, 0, 0.0, -0.5, "30", "30s", True, [30]])
ADDRESS: Values = (
    ["ops@example.com", "DBackup <d@example.com>", '"Ops, Night" <n@example.org>'],
    ["", "no-at-sign", 5, ["ops@example.com"], {"addr": "a@example.com"}],
)
ADDRESSES: Values = (
    [["ops@example.com"], ["a@example.com", "B <b@example.org>"], "a@example.com; b@x.org"],
    [[], "", " , ; ", ["ops@example.com", 3], 7, {"a": "a@example.com"}, "no-at-sign"],
)
BOOL: Values = ([True, False], ["yes", 1, 0, "false"])

EMAIL: dict[str, Values] = {
    "host": (
        ["smtp.example.com", "127.0.0.1", "[::1]", "mail"],
        ["", " ", "a b", "host\n", "x\x00", "\u00a0", "\t", 25, ["smtp.example.com"]],
    ),
    "from": ADDRESS,
    "to": ADDRESSES,
    "cc": ADDRESSES,
    "bcc": ADDRESSES,
    "reply_to": ADDRESSES,
    "port": ([1, 2, 25, 465, 587, 2525, 65535], [0, -1, 65536, 70000, "587", 587.5, True]),
    "security": (["none", "ssl", "starttls"], ["tls", "SSL", "", 1]),
    "user": (["d", "ops@example.com", ""], [3, ["d"]]),
    "password": (["secret", "p@ss w0rd", ""], [4, ["secret"]]),
    "auth": (["auto", "plain", "login", "cram-md5", "xoauth2"], ["XOAUTH2", "oauth", 2]),
    "oauth2_token": (
        [{"env": "SMTP_TOKEN"}, {"file": "/run/token"}, {"command": ["get-token", "-q"]}],
        [{"env": ""}, {"command": []}, {"env": "A", "file": "b"}, "a-token", 5, {"command": [1]}],
    ),
    "allow_plaintext_auth": BOOL,
    "tls_verify": BOOL,
    "per_recipient": BOOL,
    "timeout": TIMES,
    "deadline": TIMES,
    "max_connections": ([1, 4, 100], [0, -5, 101, "4", 4.5]),
    "local_hostname": (
        ["mail.example.com", "[192.0.2.1]", "localhost", "x" * 253],
        ["-bad", "bad-", "a b", "", "x" * 254, "mail.example.com\n", 5],
    ),
    "preset": (
        ["gmail", "sendgrid", "mailgun", "ses", "mailtrap", "postfix"],
        ["Gmail", "nosuch", "", 3],
    ),
    "region": (["us-east-1", "eu-west-2"], ["", "us east", "-", "us-east-1\n", "ü-west-1", 5]),
    "hots": ([], ["smtp.example.com"]),
}
EMAIL_REQUIRED = ("host", "from", "to")

NTFY_PRIORITY: Values = ([1, 2, 3, 4, 5], [0, 6, -1, "3", 3.5, True])
NTFY: dict[str, Values] = {
    "topic": (
        ["dbackup", "a", "x" * 64, "A-b_9"],
        ["", "x" * 65, "a b", "ä", "a/b", "topic\n", 5],
    ),
    "server_url": (["https://ntfy.sh", "http://ntfy.local:8080", "https://n.example/"], [5, []]),
    "access_token": (["tk_abc", "token with space"], [5, ["tk"]]),
    "priority": NTFY_PRIORITY,
    "failure_priority": NTFY_PRIORITY,
    "timeout": TIMES,
    "topik": ([], ["dbackup"]),
}
NTFY_REQUIRED = ("topic",)

GOTIFY_PRIORITY: Values = ([0, 1, 5, 8, 10], [-1, 11, "5", 5.5, False])
GOTIFY: dict[str, Values] = {
    "server_url": (["https://gotify.example.com", "http://10.0.0.2:8080/"], [5, []]),
    "app_token": (["AbCdEf.123"], [5, ["t"]]),
    "priority": GOTIFY_PRIORITY,
    "failure_priority": GOTIFY_PRIORITY,
    "timeout": TIMES,
    "token": ([], ["AbCdEf.123"]),
}
GOTIFY_REQUIRED = ("server_url", "app_token")

WEBHOOK: dict[str, Values] = {
    "webhook_url": (["https://hooks.example.com/x/1", "http://localhost:8080/hook"], [5, []]),
    "method": (["POST", "PUT", "PATCH"], ["GET", "DELETE", "FETCH", "", 1]),
    "content_type": (
        ["application/json", "text/plain; charset=utf-8", "application/problem+json", " a/b "],
        ["json", "", "text/plain\r\n", "text/plain\n", "application/json ü", "a/b c", 5],
    ),
    "auth_header": (["Bearer abc"], [5, {"bearer": "abc"}]),
    "headers": (
        [{}, {"X-Source": "dbackup"}, {"X-A": "1", "X-B": "two words"}],
        [{"Bad Name": "x"}, {"X-A": "line\nbreak"}, {"X-A": "é"}, {"X-A": 5}, "X-A: 1", ["x"]],
    ),
    "webhook": ([], ["https://hooks.example.com/x/1"]),
}
WEBHOOK_REQUIRED = ("webhook_url",)

EVENT_NAMES = ["backup_failure", "a", "x" * 100, "my.app:job-1"]
BAD_EVENT_NAMES = ["", "a b", "x" * 101, "job\n", "ä", "a/b"]


def signal_tables(good: Sequence[str], bad: Sequence[Any]) -> Values:
    """``signals`` tables: event types to the plugin's signals, and ones that are wrong."""
    return (
        [
            {},
            *({name: value} for name in EVENT_NAMES for value in good),
            dict.fromkeys(EVENT_NAMES, good[-1]),
        ],
        [
            *({name: good[0]} for name in BAD_EVENT_NAMES),
            *({"backup_failure": value} for value in bad),
            ["backup_failure"],
            "backup_failure",
        ],
    )


HEALTHCHECKS: dict[str, Values] = {
    "ping_url": (["https://hc-ping.com/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"], [5, []]),
    "signals": signal_tables(
        ["start", "success", "fail", "log"], ["Fail", "up", "", 1, None, ["fail"]]
    ),
    "run_id": BOOL,
    "body_limit": ([0, 1, 100_000, 1_000_000], [-1, 1_000_001, "100000", 1.5, True]),
    "timeout": TIMES,
    "signal": ([], [{"backup_failure": "fail"}]),
}
HEALTHCHECKS_REQUIRED = ("ping_url",)

UPTIME_KUMA: dict[str, Values] = {
    "push_url": (["https://kuma.example.com/api/push/pK3vR8sT2w?status=up&msg=OK&ping="], [5]),
    "signals": signal_tables(["up", "down"], ["UP", "fail", "", 0, None, {"up": 1}]),
    "duration_as_ping": BOOL,
    "timeout": TIMES,
    "token": ([], ["pK3vR8sT2w"]),
}
UPTIME_KUMA_REQUIRED = ("push_url",)


def generate(
    rng: random.Random, keys: Mapping[str, Values], required: Sequence[str]
) -> dict[str, Any]:
    """A block: each required key most of the time, a few others; mostly valid values."""
    block: dict[str, Any] = {}
    for key, (good, bad) in keys.items():
        chance = 0.9 if key in required else 0.25 if good else 0.03  # an unknown key: rare
        if rng.random() > chance:
            continue
        pick_bad = not good or (bad and rng.random() < 0.06)
        block[key] = rng.choice(bad if pick_bad else good)
    return block


def validate_accepts(validate: Callable[[Mapping[str, Any]], Any], block: dict[str, Any]) -> bool:
    try:
        validate(block)
    except ConfigError:
        return False
    return True


async def _agree(
    cli: Any,
    channel_type: str,
    validate: Callable[[Mapping[str, Any]], Any],
    keys: Mapping[str, Values],
    required: Sequence[str],
    seed: int,
) -> tuple[int, int]:
    run = await cli("schema", channel_type)
    assert run.code == 0, run.err
    checker = jsonschema.Draft202012Validator(json.loads(run.out))
    rng = random.Random(seed)
    accepted = 0
    disagreements: list[str] = []
    for _ in range(BLOCKS):
        block = generate(rng, keys, required)
        by_schema = checker.is_valid({"type": channel_type, **block})
        by_validate = validate_accepts(validate, block)
        accepted += by_validate
        if by_schema != by_validate:
            why = [e.message for e in checker.iter_errors({"type": channel_type, **block})]
            disagreements.append(f"schema {by_schema}, validate {by_validate}: {block!r} {why}")
    assert not disagreements, f"{len(disagreements)} of {BLOCKS}:\n" + "\n".join(disagreements[:10])
    return accepted, BLOCKS - accepted


@pytest.mark.parametrize("seed", [12, 14])
async def test_email_schema_accepts_what_validate_accepts(cli: Any, seed: int) -> None:
    from dbnotify_email.plugin import validate_config

    accepted, refused = await _agree(cli, "email", validate_config, EMAIL, EMAIL_REQUIRED, seed)
    assert accepted > BLOCKS // 10  # both sides are exercised
    assert refused > BLOCKS // 10


async def test_ntfy_schema_accepts_what_validate_accepts(cli: Any) -> None:
    from dbnotify_ntfy.plugin import validate_config

    accepted, refused = await _agree(cli, "ntfy", validate_config, NTFY, NTFY_REQUIRED, 12)
    assert accepted > BLOCKS // 10
    assert refused > BLOCKS // 10


async def test_gotify_schema_accepts_what_validate_accepts(cli: Any) -> None:
    from dbnotify_gotify.plugin import validate_config

    accepted, refused = await _agree(cli, "gotify", validate_config, GOTIFY, GOTIFY_REQUIRED, 12)
    assert accepted > BLOCKS // 10
    assert refused > BLOCKS // 10


async def test_webhook_schema_accepts_what_validate_accepts(cli: Any) -> None:
    from dbnotify_webhook.plugin import validate_config

    accepted, refused = await _agree(cli, "webhook", validate_config, WEBHOOK, WEBHOOK_REQUIRED, 12)
    assert accepted > BLOCKS // 10
    assert refused > BLOCKS // 10


async def test_healthchecks_schema_accepts_what_validate_accepts(cli: Any) -> None:
    from dbnotify_healthchecks.plugin import validate_config

    accepted, refused = await _agree(
        cli, "healthchecks", validate_config, HEALTHCHECKS, HEALTHCHECKS_REQUIRED, 12
    )
    assert accepted > BLOCKS // 10
    assert refused > BLOCKS // 10


async def test_uptime_kuma_schema_accepts_what_validate_accepts(cli: Any) -> None:
    from dbnotify_uptime_kuma.plugin import validate_config

    accepted, refused = await _agree(
        cli, "uptime-kuma", validate_config, UPTIME_KUMA, UPTIME_KUMA_REQUIRED, 12
    )
    assert accepted > BLOCKS // 10
    assert refused > BLOCKS // 10


@pytest.mark.parametrize(
    ("block", "valid"),
    [
        ({"preset": "gmail"}, True),
        ({"preset": "ses", "region": "eu-west-1"}, True),
        ({"preset": "postfix"}, False),
        ({"preset": "postfix", "host": "mail.example.com"}, True),
        ({}, False),
        ({"host": "smtp.example.com", "port": 70000}, False),
        ({"host": "smtp.example.com", "timeout": -1}, False),
        ({"host": "smtp.example.com", "region": "us-east-1"}, False),
    ],
)
async def test_a_preset_supplies_host(cli: Any, block: dict[str, Any], valid: bool) -> None:
    from dbnotify_email.plugin import validate_config

    block = {"from": "d@example.com", "to": ["ops@example.com"], **block}
    schema = json.loads((await cli("schema", "email")).out)
    assert jsonschema.Draft202012Validator(schema).is_valid({"type": "email", **block}) is valid
    assert validate_accepts(validate_config, block) is valid
