"""A server that echoes what it was sent never gets a secret into a result or a test.

The server is the raw script (``scripted``): its AUTH reply quotes the password as sent
(the AUTH PLAIN or LOGIN base64, the XOAUTH2 blob) or decoded. Marker values only.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dbnotify import Event, FailureKind, Notifier, Status

EVENT = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
USER = "mailer@example.com"
PASSWORD = "marker-Pa$$word/+&="
TOKEN = "marker.oauth-token/+=="
MASK = "********"
EHLO = "250-raw.test\r\n250 AUTH PLAIN LOGIN XOAUTH2"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


PLAIN = b64(f"\0{USER}\0{PASSWORD}")
LOGIN = b64(PASSWORD)
XOAUTH2 = b64(f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01")

ECHOES = [
    pytest.param({}, f"535 5.7.8 AUTH PLAIN {PLAIN} refused", "plain", id="plain-base64"),
    pytest.param({}, f"535 5.7.8 password {PASSWORD} refused", "plain", id="decoded"),
    pytest.param({}, f"535 5.7.8 pw={quote(PASSWORD, safe='')} refused", "plain", id="url"),
    pytest.param({}, f"535 5.7.8 {LOGIN.rstrip('=')} refused", "plain", id="unpadded"),
    pytest.param(
        {LOGIN.upper(): f"535 5.7.8 LOGIN {LOGIN} refused"}, None, "login", id="login-base64"
    ),
    pytest.param({}, f"535 5.7.8 XOAUTH2 {XOAUTH2} refused", "xoauth2", id="xoauth2-blob"),
    pytest.param({}, f"535 5.7.8 token {TOKEN} refused", "xoauth2", id="xoauth2-token"),
]


def _options(auth: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    options: dict[str, Any] = {"user": USER, "allow_plaintext_auth": True, "auth": auth}
    if auth == "xoauth2":
        monkeypatch.setenv("MARKER_SMTP_TOKEN", TOKEN)
        options["oauth2_token"] = {"env": "MARKER_SMTP_TOKEN"}
    else:
        options["password"] = PASSWORD
    return options


def _replies(more: dict[str, str], auth_reply: str | None) -> dict[str, str]:
    return {"AUTH": auth_reply or "334 UGFzc3dvcmQ6", **more}


def _leaks(text: str) -> list[str]:
    return [s for s in (PASSWORD, TOKEN, PLAIN, LOGIN.rstrip("="), XOAUTH2) if s in text]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize(("more", "auth_reply", "auth"), ECHOES)
async def test_an_echoed_secret_is_masked_in_send_results(
    scripted: Any,
    make_notifier: Any,
    monkeypatch: pytest.MonkeyPatch,
    more: dict[str, str],
    auth_reply: str | None,
    auth: str,
) -> None:
    server = await scripted(good_ehlo=EHLO, replies=_replies(more, auth_reply))
    notifier = make_notifier(server.port, **_options(auth, monkeypatch))

    (recipient,) = (await notifier.notify(EVENT)).recipients
    assert recipient.status is Status.FAILED
    assert recipient.kind is FailureKind.PERMANENT
    assert recipient.reason == "Invalid login credentials"
    assert recipient.reply is not None
    assert recipient.reply.startswith("535 5.7.8 ")
    assert MASK in recipient.reply
    assert _leaks(repr(recipient)) == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize(("more", "auth_reply", "auth"), ECHOES)
async def test_an_echoed_secret_is_masked_in_test_stages(
    scripted: Any,
    make_notifier: Any,
    monkeypatch: pytest.MonkeyPatch,
    more: dict[str, str],
    auth_reply: str | None,
    auth: str,
) -> None:
    server = await scripted(good_ehlo=EHLO, replies=_replies(more, auth_reply))
    notifier = make_notifier(server.port, **_options(auth, monkeypatch))

    report = await notifier.test("mail")
    auth_stage = report.stages[-1]
    assert (auth_stage.name, auth_stage.ok) == ("auth", False)
    assert auth_stage.detail.startswith("Invalid login credentials (server said: 535 5.7.8 ")
    assert MASK in auth_stage.detail
    assert _leaks(repr(report)) == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_the_exact_masked_reply(scripted: Any, make_notifier: Any) -> None:
    server = await scripted(
        good_ehlo=EHLO, replies={"AUTH": f"535 5.7.8 AUTH PLAIN {PLAIN} for {PASSWORD}"}
    )
    notifier = make_notifier(server.port, user=USER, password=PASSWORD, allow_plaintext_auth=True)

    (recipient,) = (await notifier.notify(EVENT)).recipients
    assert recipient.reply == f"535 5.7.8 AUTH PLAIN {MASK} for {MASK}"


def _all_bytes(folder: Path) -> bytes:
    """The outbox file and its journal (-wal, -shm) as they are on disk."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_the_outbox_file_and_history_never_hold_an_echoed_secret(
    scripted: Any, tmp_path: Path
) -> None:
    """What ``history --json`` and ``outbox`` read, and the SQLite file itself."""
    server = await scripted(
        good_ehlo=EHLO, replies={"AUTH": f"535 5.7.8 AUTH PLAIN {PLAIN} for {PASSWORD}"}
    )
    path = tmp_path / "outbox.sqlite"
    notifier = Notifier.from_config(
        {
            "channels": {
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "security": "none",
                    "from": "dbackup@example.com",
                    "to": ["ops@example.com"],
                    "user": USER,
                    "password": PASSWORD,
                    "allow_plaintext_auth": True,
                    "timeout": 5,
                }
            },
            "routing": {"channels": ["mail"]},
            "outbox": {"path": str(path)},
        }
    )
    result = await notifier.notify(EVENT)
    notifier.start()
    try:
        end = time.monotonic() + 10
        while not (rows := await notifier.history(delivery_ids=result.delivery_ids)) or not all(
            r.attempts for r in rows
        ):
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
    finally:
        await notifier.aclose()
    (row,) = rows
    assert row.reply == f"535 5.7.8 AUTH PLAIN {MASK} for {MASK}"
    stored = await asyncio.to_thread(_all_bytes, tmp_path)
    assert [s for s in (PASSWORD, PLAIN, LOGIN.rstrip("=")) if s.encode() in stored] == []


SHORT = "pw7"
"""Shorter than any form masked wherever it is: masked where it stands alone."""


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_short_password_is_masked_where_it_stands_alone(
    scripted: Any, make_notifier: Any
) -> None:
    plain, login = b64(f"\0{USER}\0{SHORT}"), b64(SHORT)
    said = (
        f"535 5.7.8 password {SHORT} (pw={SHORT}; '{login}') refused; "
        f"{SHORT}x and apw7 stay; PLAIN {plain}"
    )
    server = await scripted(good_ehlo=EHLO, replies={"AUTH": said})
    notifier = make_notifier(server.port, user=USER, password=SHORT, allow_plaintext_auth=True)

    (recipient,) = (await notifier.notify(EVENT)).recipients
    masked = (
        f"535 5.7.8 password {MASK} (pw={MASK}; '{MASK}') refused; {SHORT}x and apw7 stay; "
        f"PLAIN {MASK}"
    )
    assert recipient.reply == masked
    report = await notifier.test("mail")
    assert report.stages[-1].detail == f"Invalid login credentials (server said: {masked})"
