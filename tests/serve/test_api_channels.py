"""``/v1/channels`` against the running server: channels read without their secrets,
created, changed and deleted in the configuration file (its comments kept, still valid
for ``dbnotify validate``, still there after a restart), and tested stage by stage,
saved or not, against real SMTP servers."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbnotify.events import Event
from dbnotify.notifier import Notifier
from dbnotify.testing.smtpd import LocalSMTPServer

from .conftest import (
    DBNOTIFY,
    READ_TOKEN,
    Served,
    email_config,
    server_env,
)

USER = "dbackup"
PASSWORD = "Pa55-word-never-shown-8f3k2"
"""The SMTP password of the channel with AUTH; asserted absent from every reply."""
ENV_PASSWORD = "TEST_SMTP_PASSWORD"
HINT_AUTH = "double-check user and password; Gmail needs an App Password"
HINT_REFUSED = "check the SMTP host and port"

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def auth_block(port: int, **changes: Any) -> dict[str, Any]:
    """An email channel to ``port`` that logs in (over a plain connection: a test server)."""
    block: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "allow_plaintext_auth": True,
        "from": "DBackup <dbackup@example.com>",
        "to": ["ops@example.com"],
        "user": USER,
        "password": {"env": ENV_PASSWORD},
    }
    block.update(changes)
    return {k: v for k, v in block.items() if v is not None}


@pytest.fixture
async def auth_smtp() -> AsyncIterator[LocalSMTPServer]:
    async with LocalSMTPServer(credentials={USER: PASSWORD}) as server:
        yield server


@pytest.fixture
async def auth_served(
    smtp: LocalSMTPServer,
    auth_smtp: LocalSMTPServer,
    tmp_path: Path,
    serve: Callable[..., Served],
) -> Served:
    """``ops-mail`` to ``smtp``, and ``auth-mail`` to ``auth_smtp`` with a password in
    the file as a literal (the case to keep out of every reply)."""
    extra = f"""
[channels.auth-mail]
type = "email"
host = "127.0.0.1"
port = {auth_smtp.port}
security = "none"
allow_plaintext_auth = true
from = "DBackup <dbackup@example.com>"
to = ["ops@example.com"]
user = "{USER}"
password = "{PASSWORD}"
"""
    config = email_config(tmp_path, smtp.port, extra=extra)
    return serve(config, env={**server_env(), ENV_PASSWORD: PASSWORD})


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DBNOTIFY, "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        env={**server_env(), ENV_PASSWORD: PASSWORD},
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def stage(reply: httpx.Response, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in reply.json()["stages"] if s["name"] == name)
    return found


async def test_list_and_get_show_whether_secrets_are_set_never_their_value(
    auth_served: Served, auth_smtp: LocalSMTPServer
) -> None:
    async with auth_served.client(READ_TOKEN) as client:
        listed = await client.get("/v1/channels")
        one = await client.get("/v1/channels/auth-mail")
    async with auth_served.client() as client:
        tested = await client.post("/v1/channels/auth-mail/test")
    assert listed.status_code == 200
    names = [c["name"] for c in listed.json()["channels"]]
    assert names == ["auth-mail", "ops-mail"]
    channel = one.json()
    assert channel["type"] == "email"
    assert channel["settings"]["password"] == {"set": True}
    assert channel["settings"]["user"] == USER
    assert channel["secrets"] == {"oauth2_token": False, "password": True}
    assert channel["routed"] is False
    assert "password: written in the configuration file as it is" in channel["warnings"][0]
    assert tested.json()["ok"] is True, tested.text
    assert stage(tested, "auth")["ok"] is True
    assert auth_smtp.messages[0].auth_user == USER
    for reply in (listed, one, tested):
        assert PASSWORD not in reply.text
    assert PASSWORD not in auth_served.output()


async def test_a_created_channel_keeps_the_files_comments_validates_and_survives_a_restart(
    served: Served, smtp: LocalSMTPServer, serve: Callable[..., Served]
) -> None:
    settings = {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "security": "none",
        "from": "DBackup <dbackup@example.com>",
        "to": ["backups@example.com"],
    }
    async with served.client() as client:
        created = await client.post(
            "/v1/channels", json={"name": "backup-mail", "settings": settings}
        )
        tested = await client.post("/v1/channels/backup-mail/test")
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/channels/backup-mail"
    assert created.json()["settings"] == settings
    assert created.json()["warnings"] == []
    text = served.config.read_text(encoding="utf-8")
    assert text.startswith("# dbnotify for DBackup (a comment the console must keep)\n")
    assert "[channels.backup-mail]\n" in text
    assert tested.json()["ok"] is True
    assert smtp.messages[-1].rcpt_tos == ("backups@example.com",)
    checked = validate(served.config)
    assert checked.returncode == 0, checked.stderr
    assert "backup-mail (email)" in checked.stdout

    served.stop()
    again = serve(served.config)
    async with again.client(READ_TOKEN) as client:
        found = await client.get("/v1/channels/backup-mail")
    assert found.status_code == 200
    assert found.json()["settings"] == settings


async def test_an_update_that_leaves_the_secret_out_keeps_it(
    auth_served: Served, auth_smtp: LocalSMTPServer
) -> None:
    async with auth_served.client() as client:
        created = await client.post(
            "/v1/channels", json={"name": "relay", "settings": auth_block(auth_smtp.port)}
        )
        left_out = await client.put(
            "/v1/channels/relay",
            json={"settings": auth_block(auth_smtp.port, password=None, to=["b@example.com"])},
        )
        after_left_out = auth_served.config.read_text(encoding="utf-8")
        sent_back = await client.put(
            "/v1/channels/relay", json={"settings": left_out.json()["settings"]}
        )
        tested = await client.post("/v1/channels/relay/test")
    assert created.status_code == 201, created.text
    assert left_out.status_code == 200, left_out.text
    assert left_out.json()["settings"]["password"] == {"set": True}
    assert left_out.json()["settings"]["to"] == ["b@example.com"]
    assert f'password = {{env = "{ENV_PASSWORD}"}}' in after_left_out
    assert sent_back.status_code == 200, sent_back.text
    assert f'password = {{env = "{ENV_PASSWORD}"}}' in auth_served.config.read_text("utf-8")
    assert tested.json()["ok"] is True, tested.text
    assert auth_smtp.messages[-1].rcpt_tos == ("b@example.com",)
    assert PASSWORD not in auth_served.output()


async def test_a_literal_secret_makes_the_file_private_and_is_warned_of(
    served: Served, smtp: LocalSMTPServer, tmp_path: Path
) -> None:
    os.chmod(served.config, 0o644)
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text("from-a-file-pw\n", encoding="utf-8")
    from_file = auth_block(smtp.port, password={"file": str(secret_file)})
    async with served.client() as client:
        from_file = await client.post("/v1/channels", json={"name": "relay", "settings": from_file})
        mode_before = stat.S_IMODE(served.config.stat().st_mode)
        literal = await client.put(
            "/v1/channels/relay",
            json={"settings": auth_block(smtp.port, password="literal-pw-123")},
        )
        listed = await client.get("/v1/channels/relay")
    assert from_file.status_code == 201, from_file.text
    assert from_file.json()["warnings"] == []
    assert mode_before == 0o644
    assert literal.status_code == 200, literal.text
    (warning,) = literal.json()["warnings"]
    assert warning == (
        "password: written in the configuration file as it is, so the file holds a password; "
        'better from the environment or a file: { env = "NAME" } or '
        '{ file = "/run/secrets/NAME" } (the file\'s mode is now 0600)'
    )
    assert stat.S_IMODE(served.config.stat().st_mode) == 0o600
    assert listed.json()["warnings"] == [warning.removesuffix(" (the file's mode is now 0600)")]
    for text in (literal.text, listed.text, served.output()):
        assert "literal-pw-123" not in text


async def test_delete_takes_the_channel_out_of_routing_or_refuses_while_it_is_a_fallback(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    extra = f"""
[channels.pager]
type = "email"
host = "127.0.0.1"
port = {smtp.port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = ["pager@example.com"]

[routing.fallbacks]
ops-mail = "pager"

[routing.events.backup_failure]
channels = ["ops-mail", "pager"]
"""
    served = serve(email_config(tmp_path, smtp.port, extra=extra))
    async with served.client() as client:
        refused = await client.delete("/v1/channels/pager")
        deleted = await client.delete("/v1/channels/ops-mail")
        gone = await client.get("/v1/channels/ops-mail")
        again = await client.delete("/v1/channels/ops-mail")
    assert refused.status_code == 409
    assert refused.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "channel 'pager' is still needed",
        "errors": [
            {
                "field": "routing.fallbacks.ops-mail",
                "value": "pager",
                "fix": "it is channel 'ops-mail''s fallback; in the file, name another first",
            }
        ],
    }
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert gone.status_code == 404
    assert gone.json()["detail"] == "channel 'ops-mail' not found"
    assert again.status_code == 404
    text = served.config.read_text(encoding="utf-8")
    assert "[channels.ops-mail]" not in text
    assert 'channels = ["pager"]' in text  # the event's list, without ops-mail
    assert "ops-mail" not in text.partition("[routing]")[2]
    assert validate(served.config).returncode == 0


async def test_conflicts_missing_channels_and_invalid_settings_are_problem_json(
    served: Served, smtp: LocalSMTPServer
) -> None:
    block = {
        "type": "email",
        "host": "127.0.0.1",
        "port": "25",
        "security": "none",
        "from": "DBackup <dbackup@example.com>",
        "to": ["ops@example.com"],
    }
    async with served.client() as client:
        exists = await client.post(
            "/v1/channels", json={"name": "ops-mail", "settings": {"type": "email"}}
        )
        missing = await client.put("/v1/channels/nope", json={"settings": {"type": "email"}})
        invalid = await client.post("/v1/channels", json={"name": "x", "settings": block})
        typo = await client.post("/v1/channels", json={"name": "x", "settings": {"type": "emial"}})
        bad_name = await client.post(
            "/v1/channels", json={"name": "ops mail", "settings": {"type": "email"}}
        )
    async with served.client(READ_TOKEN) as client:
        forbidden = await client.post("/v1/channels", json={"name": "y", "settings": block})
    assert exists.status_code == 409
    assert exists.json()["detail"] == "channel 'ops-mail' exists already"
    assert exists.json()["errors"] == [
        {
            "field": "name",
            "value": "ops-mail",
            "fix": "choose another name, or change it with PUT /v1/channels/ops-mail",
        }
    ]
    assert missing.status_code == 404
    assert missing.json()["detail"] == "channel 'nope' not found"
    assert invalid.status_code == 422
    assert invalid.json()["detail"] == "invalid settings for channel 'x'"
    assert invalid.json()["errors"] == [
        {"field": "settings.port", "value": "'25'", "fix": "must be an integer (got '25')"}
    ]
    assert typo.json()["errors"][0]["field"] == "settings.type"
    assert "did you mean 'email'?" in typo.json()["errors"][0]["fix"]
    assert bad_name.status_code == 422
    assert bad_name.json()["errors"][0]["field"] == "name"
    assert forbidden.status_code == 403
    assert "[channels.x]" not in served.config.read_text(encoding="utf-8")

    # the same words as dbnotify validate, which names the field in the file
    broken = served.config.with_name("broken.toml")
    broken.write_text(
        served.config.read_text(encoding="utf-8")
        + '\n[channels.x]\ntype = "email"\nhost = "127.0.0.1"\nport = "25"\nsecurity = "none"\n'
        'from = "DBackup <dbackup@example.com>"\nto = ["ops@example.com"]\n',
        encoding="utf-8",
    )
    checked = validate(broken)
    assert checked.returncode == 2
    assert "channels.x.port: must be an integer (got '25')" in checked.stderr


async def test_a_saved_channel_is_tested_and_its_message_arrives(
    served: Served, smtp: LocalSMTPServer
) -> None:
    async with served.client() as client:
        checked = await client.post("/v1/channels/ops-mail/test?send=false")
        sent = await client.post("/v1/channels/ops-mail/test")
        missing = await client.post("/v1/channels/nope/test")
    assert checked.json()["ok"] is True
    assert checked.json()["deliveries"] == []
    assert [s["name"] for s in checked.json()["stages"]][:2] == ["resolve", "connect"]
    reply = sent.json()
    assert reply["channel"] == "ops-mail"
    assert reply["ok"] is True, sent.text
    assert all(isinstance(s["duration"], float) for s in reply["stages"])
    assert reply["deliveries"][0]["recipient"] == "ops@example.com"
    assert reply["deliveries"][0]["status"] == "delivered"
    assert len(smtp.messages) == 1
    assert smtp.messages[0].rcpt_tos == ("ops@example.com",)
    assert missing.status_code == 404


async def test_an_unsaved_channel_with_a_wrong_port_fails_at_connect_with_a_hint(
    served: Served,
) -> None:
    port = closed_port()
    settings = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "DBackup <dbackup@example.com>",
        "to": ["ops@example.com"],
    }
    async with served.client() as client:
        reply = await client.post("/v1/channels/test", json={"settings": settings})
        invalid = await client.post("/v1/channels/test", json={"settings": {**settings, "port": 0}})
    assert reply.status_code == 200
    assert reply.json()["ok"] is False
    assert reply.json()["channel"] == "unsaved"
    connect = stage(reply, "connect")
    assert connect["ok"] is False
    assert connect["detail"] == f"Connection refused to smtp server 127.0.0.1:{port}"
    assert connect["hint"].startswith(HINT_REFUSED)
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "settings.port"
    assert "[channels.unsaved]" not in served.config.read_text(encoding="utf-8")


async def test_a_wrong_password_fails_at_auth_with_the_hint_and_is_never_shown(
    auth_served: Served, auth_smtp: LocalSMTPServer
) -> None:
    wrong = "wrong-Pa55word-77x"
    async with auth_served.client() as client:
        refused = await client.post(
            "/v1/channels/test",
            json={"settings": auth_block(auth_smtp.port, password=wrong)},
        )
        # editing the saved channel: its password fills in the one left out
        kept = await client.post(
            "/v1/channels/test",
            json={"name": "auth-mail", "settings": auth_block(auth_smtp.port, password=None)},
        )
    assert refused.json()["ok"] is False
    auth = stage(refused, "auth")
    assert auth["ok"] is False
    assert auth["detail"].startswith("Invalid login credentials")
    assert auth["hint"].startswith(HINT_AUTH)
    assert kept.json()["ok"] is True, kept.text
    assert auth_smtp.messages[-1].auth_user == USER
    for text in (refused.text, kept.text, auth_served.output()):
        assert wrong not in text
        assert PASSWORD not in text


async def test_a_change_is_in_use_at_once_and_the_channel_shows_its_last_outcome(
    served: Served, smtp: LocalSMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served.client(READ_TOKEN) as client:
        before = (await client.get("/v1/channels/ops-mail")).json()
    async with served.client() as client:
        changed = await client.put(
            "/v1/channels/ops-mail",
            json={"settings": {**before["settings"], "to": ["changed@example.com"]}},
        )
    assert before["last"] is None
    assert before["last_delivered"] is None
    assert before["parked"] is None
    assert changed.status_code == 200, changed.text

    # a host commits an event to the same outbox; the server's worker delivers it
    for name, value in server_env().items():
        monkeypatch.setenv(name, value)
    notifier = Notifier.from_config(served.config)
    try:
        queued = await notifier.notify(Event("backup_success", {"job_name": "nightly"}))
    finally:
        await notifier.aclose()
        assert notifier.outbox is not None
        await notifier.outbox.aclose()
    await asyncio.wait_for(smtp.arrived.wait(), 30)
    assert smtp.messages[0].rcpt_tos == ("changed@example.com",)

    async with served.client(READ_TOKEN) as client:
        for _ in range(100):  # the worker records the outcome just after the server's 250
            listed = (await client.get("/v1/channels")).json()["channels"]
            if listed[0]["last"] is not None:
                break
            await asyncio.sleep(0.1)
    (channel,) = listed
    assert channel["last"]["delivery_id"] == queued.delivery_ids[0]
    assert channel["last"]["event_type"] == "backup_success"
    assert channel["last"]["recipient"] == "changed@example.com"
    assert channel["last"]["status"] == "delivered"
    assert channel["last_delivered"] == channel["last"]["at"]


async def test_changes_at_once_are_made_one_after_the_other(
    served: Served, smtp: LocalSMTPServer
) -> None:
    def block(index: int) -> dict[str, Any]:
        return {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from": "DBackup <dbackup@example.com>",
            "to": [f"team{index}@example.com"],
        }

    async with served.client() as client:
        replies = await asyncio.gather(
            *(
                client.post("/v1/channels", json={"name": f"team-{i}", "settings": block(i)})
                for i in range(6)
            )
        )
        listed = await client.get("/v1/channels")
    assert [r.status_code for r in replies] == [201] * 6
    names = [c["name"] for c in listed.json()["channels"]]
    assert names == ["ops-mail", *(f"team-{i}" for i in range(6))]
    assert validate(served.config).returncode == 0


async def test_a_webhooks_url_and_secret_headers_read_as_set_and_are_kept(
    served: Served, tmp_path: Path
) -> None:
    url = "https://hooks.example.com/T0/B0/url-is-the-secret-4k2"
    key_file = tmp_path / "api-key"
    key_file.write_text("key-from-a-file\n", encoding="utf-8")
    settings = {
        "type": "webhook",
        "webhook_url": url,
        "headers": {"X-Source": "dbackup", "X-Api-Key": {"file": str(key_file)}},
    }
    async with served.client() as client:
        created = await client.post("/v1/channels", json={"name": "hook", "settings": settings})
        written = served.config.read_text(encoding="utf-8")
        sent_back = await client.put(
            "/v1/channels/hook", json={"settings": created.json()["settings"]}
        )
    assert created.status_code == 201, created.text
    shown = created.json()["settings"]
    assert shown["webhook_url"] == {"set": True}
    assert shown["headers"] == {"X-Source": "dbackup", "X-Api-Key": {"set": True}}
    assert created.json()["secrets"] == {"auth_header": False, "webhook_url": True}
    assert sent_back.status_code == 200, sent_back.text
    assert served.config.read_text(encoding="utf-8") == written
    for text in (created.text, sent_back.text, served.output()):
        assert url not in text
        assert str(key_file) not in text
