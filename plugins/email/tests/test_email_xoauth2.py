"""XOAUTH2 (Microsoft 365, Gmail): the token from env, file or command, at every connection.

The server is aiosmtpd with a custom ``auth_XOAUTH2`` mechanism on its handler, over
STARTTLS: it decodes what the client sends and accepts only the token it expects.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from dbnotify import (
    ConfigError,
    DispatchResult,
    Event,
    FailureKind,
    Notifier,
    RecipientResult,
    Status,
)

EVENT = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
MAILBOX = "dbackup@example.com"
TOKEN = "ya29.a0-Secret-Access-Token-1"
HINT_OAUTH = (
    "the OAuth access token was refused: check that oauth2_token gives a fresh token "
    "(they expire after about an hour) issued for user, with the mail scope (Microsoft "
    "365: SMTP.Send, and SMTP AUTH enabled for the mailbox; Gmail: https://mail.google.com/)"
)
"""Not the App Password advice: there is no password."""


@attrs.define
class XOAuth2Handler:
    """Accepts ``AUTH XOAUTH2`` with ``token`` for ``MAILBOX``; keeps what it is sent."""

    token: str
    seen: list[tuple[str, str]] = attrs.field(factory=list)
    """(user, token) of every XOAUTH2 attempt."""
    messages: list[tuple[bool, Envelope]] = attrs.field(factory=list)
    """(authenticated?, envelope) of every message."""

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) != 2:
            return AuthResult(success=False, handled=False)
        fields = base64.b64decode(args[1]).decode().split("\x01")
        user = fields[0].removeprefix("user=")
        token = fields[1].removeprefix("auth=Bearer ")
        self.seen.append((user, token))
        if (user, token) == (MAILBOX, self.token):
            return AuthResult(success=True, auth_data=user)
        # Google's way: a JSON error as a challenge, then 535 after the client's empty line
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((session.authenticated, envelope))
        return "250 2.0.0 OK"


Start = Callable[[str], Awaitable[tuple[XOAuth2Handler, int]]]


@pytest.fixture
async def xoauth2_server(tls: Any) -> AsyncIterator[Start]:
    """``handler, port = await xoauth2_server(token)``: STARTTLS required, then XOAUTH2."""
    servers: list[asyncio.AbstractServer] = []

    async def start(token: str) -> tuple[XOAuth2Handler, int]:
        handler = XOAuth2Handler(token)
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(
                handler,
                hostname="xoauth2.test",
                tls_context=tls.server_context,
                require_starttls=True,
                auth_required=True,
                auth_exclude_mechanism=["LOGIN", "PLAIN"],
            ),
            "127.0.0.1",
            0,
        )
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return handler, port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def notifier_for(port: int, tls: Any, token_source: dict[str, Any]) -> Notifier:
    return Notifier.from_config(
        {
            "channels": {
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "starttls",
                    "tls_ca_file": tls.ca_file,
                    "auth": "xoauth2",
                    "user": MAILBOX,
                    "oauth2_token": token_source,
                    "from": MAILBOX,
                    "to": ["ops@example.com"],
                    "timeout": 5,
                }
            },
            "routing": {"channels": ["mail"]},
        }
    )


def single(result: DispatchResult) -> RecipientResult:
    (only,) = result.recipients
    return only


async def test_token_from_the_environment(
    xoauth2_server: Start, tls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBNOTIFY_TEST_SMTP_TOKEN", TOKEN)
    handler, port = await xoauth2_server(TOKEN)
    notifier = notifier_for(port, tls, {"env": "DBNOTIFY_TEST_SMTP_TOKEN"})

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    assert handler.seen == [(MAILBOX, TOKEN)]
    ((authenticated, envelope),) = handler.messages
    assert authenticated
    assert envelope.rcpt_tos == ["ops@example.com"]
    report = await notifier.test("mail", send_message=False)
    assert report.stages[-1].detail == f"logged in as {MAILBOX} (XOAUTH2)"
    await notifier.aclose()


async def test_token_file_is_read_again_at_every_connection(
    xoauth2_server: Start, tls: Any, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    handler, port = await xoauth2_server(TOKEN)
    notifier = notifier_for(port, tls, {"file": str(token_file)})

    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    await notifier.aclose()  # the next notification needs a new connection
    # the token was refreshed (they expire after about an hour)
    handler.token = "ya29.a0-Refreshed-Token-2"
    token_file.write_text(handler.token, encoding="utf-8")
    assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    await notifier.aclose()
    assert handler.seen == [(MAILBOX, TOKEN), (MAILBOX, "ya29.a0-Refreshed-Token-2")]
    assert len(handler.messages) == 2


async def test_token_from_a_command(xoauth2_server: Start, tls: Any) -> None:
    handler, port = await xoauth2_server("tok")
    async with notifier_for(port, tls, {"command": ["python3", "-c", "print('tok')"]}) as notifier:
        assert single(await notifier.notify(EVENT)).status is Status.DELIVERED
    assert handler.seen == [(MAILBOX, "tok")]


async def test_failing_token_command_is_transient_and_says_why(
    xoauth2_server: Start, tls: Any
) -> None:
    handler, port = await xoauth2_server(TOKEN)
    command = [sys.executable, "-c", "import sys; sys.exit('token expired, log in again')"]
    notifier = notifier_for(port, tls, {"command": command})

    recipient = single(await notifier.notify(EVENT))
    assert (recipient.status, recipient.kind) == (Status.FAILED, FailureKind.TRANSIENT)
    assert recipient.reason == (
        f"oauth2_token: {sys.executable!r} exited with status 1; run it by hand as the same "
        "user to see why"
    )
    assert recipient.hint == "check that the token source works for the user dbnotify runs as"
    assert handler.seen == []  # nothing was tried without a token


async def test_unset_token_variable_is_reported_by_name(
    xoauth2_server: Start, tls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBNOTIFY_TEST_NO_SUCH_TOKEN", raising=False)
    _handler, port = await xoauth2_server(TOKEN)
    report = await notifier_for(port, tls, {"env": "DBNOTIFY_TEST_NO_SUCH_TOKEN"}).test("mail")

    assert [(s.name, s.ok) for s in report.stages][-2:] == [("tls", True), ("auth", False)]
    assert report.stages[-1].detail == (
        "oauth2_token: environment variable DBNOTIFY_TEST_NO_SUCH_TOKEN is empty or unset"
    )


async def test_rejected_token_is_permanent(xoauth2_server: Start, tls: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("ya29.a0-Expired-Token", encoding="utf-8")
    handler, port = await xoauth2_server(TOKEN)

    recipient = single(await notifier_for(port, tls, {"file": str(token_file)}).notify(EVENT))
    assert recipient == RecipientResult.failed(
        "ops@example.com",
        FailureKind.PERMANENT,
        "Invalid login credentials",
        reply="535 5.7.8 Username and Password not accepted",
        hint=HINT_OAUTH,
        parks_channel=True,  # the outbox holds the channel's queue until it is fixed
    )
    assert handler.messages == []


def test_xoauth2_configuration_errors() -> None:
    from dbnotify.plugins import default_registry

    plugin = default_registry().get("email")
    assert plugin is not None
    base = {"host": "smtp.office365.com", "from": MAILBOX, "to": ["ops@example.com"]}
    for options, expected in [
        (
            {"auth": "xoauth2", "user": MAILBOX},
            'oauth2_token: required with auth = "xoauth2", e.g. { env = "SMTP_TOKEN" }',
        ),
        (
            {"auth": "xoauth2", "oauth2_token": {"env": "T"}},
            'user: required with auth = "xoauth2" (the mailbox address)',
        ),
        (
            {"auth": "xoauth2", "user": MAILBOX, "password": "x", "oauth2_token": {"env": "T"}},
            'password: not used with auth = "xoauth2"; remove it',
        ),
        ({"oauth2_token": {"env": "T"}}, 'oauth2_token: only used with auth = "xoauth2"'),
        (
            {"auth": "xoauth2", "user": MAILBOX, "oauth2_token": {"url": "https://x"}},
            'oauth2_token: must be { env = "NAME" }, { file = "/path" } or '
            '{ command = ["program", "arg"] } (got a table with keys url)',
        ),
        (
            {"auth": "xoauth2", "user": MAILBOX, "oauth2_token": TOKEN},
            'oauth2_token: must be { env = "NAME" }, { file = "/path" } or '
            '{ command = ["program", "arg"] } (got a string; write where the token is read '
            "from, not the token: it expires)",
        ),
        (
            {"auth": "xoauth2", "user": MAILBOX, "oauth2_token": [TOKEN]},
            'oauth2_token: must be { env = "NAME" }, { file = "/path" } or '
            '{ command = ["program", "arg"] } (got a list)',
        ),
    ]:
        with pytest.raises(ConfigError) as info:
            plugin.validate_config({**base, **options})
        assert str(info.value) == f"1 configuration error:\n  {expected}", options


async def test_token_never_appears_in_results_reprs_or_logs(
    xoauth2_server: Start,
    tls: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    good, bad = TOKEN, "ya29.a0-Wrong-But-Still-Secret"
    token_file = tmp_path / "token"
    handler, port = await xoauth2_server(good)
    shown: list[str] = []
    for token in (good, bad):
        token_file.write_text(token, encoding="utf-8")
        async with notifier_for(port, tls, {"file": str(token_file)}) as notifier:
            result = await notifier.notify(EVENT)
            report = await notifier.test("mail")
            shown += [repr(result), str(result), repr(report), repr(notifier.config)]
            shown += [repr(notifier.config.channels["mail"].config)]
            shown += [f"{r.reason} {r.reply} {r.hint}" for r in result.recipients]
            shown += [f"{s.detail} {s.hint}" for s in report.stages]
    assert [t for _u, t in handler.seen] == [good, good, bad, bad]
    assert len(handler.messages) == 2  # notify + test with the good token

    ours = [r.getMessage() for r in caplog.records if r.name.startswith("dbnotify")]
    assert ours
    text = "\n".join(shown + ours)
    for token in (good, bad):
        raw = f"user={MAILBOX}\x01auth=Bearer {token}\x01\x01"
        for form in (token, base64.b64encode(raw.encode()).decode()):
            assert form not in text


def test_token_source_repr_shows_where_not_what() -> None:
    from dbnotify_email.tokens import TokenSource

    assert TokenSource(env="SMTP_TOKEN").describe() == "environment variable SMTP_TOKEN"
    assert TokenSource(file="/run/token").describe() == "file /run/token"
    assert TokenSource(command=("get-token", "--user", "x")).describe() == "command get-token"


async def test_a_failing_token_command_never_shows_what_it_printed(
    xoauth2_server: Start, tls: Any
) -> None:
    handler, port = await xoauth2_server(TOKEN)
    leaky = "import sys; sys.stderr.write('ya29.SECRET-TOKEN-VALUE'); sys.exit(3)"
    notifier = notifier_for(port, tls, {"command": [sys.executable, "-c", leaky]})
    recipient = single(await notifier.notify(EVENT))
    assert "SECRET-TOKEN-VALUE" not in repr(recipient)
    assert recipient.reason is not None
    assert recipient.reason.endswith(
        "exited with status 3; run it by hand as the same user to see why"
    )
    assert handler.seen == []
