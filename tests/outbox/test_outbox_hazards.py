"""The SMTP hazards of smtp-hazards.md, now through the outbox and its worker.

The email channel's own tests check one attempt per hazard; here the worker carries on:
a transient hazard ends *delivered* once the server behaves (the same Message-ID, once,
to those who still need it), a permanent one ends *dead* with the right reason after
exactly one connection (no retry storm), and bad credentials park the channel's queue
until its configuration changes or an operator retries it.

Each test runs the worker in process (``Notifier.start()``) against a real server on the
test's loop; the 535 tests run ``dbnotify worker`` and ``dbnotify retry`` as processes.
Covered: #1-12, 14, 16, 17, 19, 21-24. Not repeated here: #13 (injected plaintext,
delivered), #15 (slow drip, transient at the deadline), #18 (transient), #20 (delivered):
one attempt each, checked by the email channel's own tests, nothing the outbox decides
differently.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme

from dbnotify import Event, Notifier
from dbnotify.outbox.model import RecipientState

FAILURE = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
EHLO_STARTTLS = "250-raw.test\r\n250-STARTTLS\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN"
THREE = ("a@x.org", "b@x.org", "c@x.org")
SENDER = "dbackup@example.com"
PLAIN_AUTH = 'user = "mailer"\npassword = "s3cret"\nallow_plaintext_auth = true'
DUPLICATE = " while sending the message; it may or may not have arrived"
SEND = ("send", "backup_failure", "--data", "job_name=j", "--data", "error=e", "--no-wait")


@attrs.frozen
class Outcome:
    rows: dict[str, tuple[str, int]]
    """recipient -> (status, attempts)"""
    reasons: dict[str, str | None]
    first_failure: str | None
    """the reason of the first failed attempt"""


async def through_the_worker(
    files: Any,
    server: Any,
    *,
    heal: bool,
    to: tuple[str, ...] = ("ops@example.com",),
    settle: float = 0.6,
    **config: Any,
) -> Outcome:
    """Queue one notification, run the worker until it is final (healing the server
    after the first failed attempt when ``heal``), then ``settle`` seconds more."""
    notifier = Notifier.from_config(files.config(server.port, to=to, **config))
    result = await notifier.notify(FAILURE)
    store = files.store()
    notifier.start()
    try:
        end = time.monotonic() + 15
        while (await store.counts())["pending"]:
            assert time.monotonic() < end, await store.history()
            if heal and not server.healed and await store.failures_since(0):
                server.heal()
            await asyncio.sleep(0.01)
        await asyncio.sleep(settle)  # time for a retry storm, if there were one
    finally:
        await notifier.aclose()
    rows = await store.history(delivery_ids=result.delivery_ids)
    failures = sorted(await store.failures_since(0), key=lambda r: r.at)
    return Outcome(
        {r.recipient: (r.status, r.attempts) for r in rows},
        {r.recipient: r.reason for r in rows},
        failures[0].reason if failures else None,
    )


def same_message(first: bytes, second: bytes) -> bool:
    """The same headers and texts (only the random MIME boundary, and the Date, which is
    each attempt's own, may differ)."""

    def view(data: bytes) -> tuple[Any, ...]:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        headers = tuple(
            (k, msg[k]) for k in ("Message-ID", "From", "To", "Subject", "Auto-Submitted")
        )
        texts = tuple(
            part.get_content()  # type: ignore[union-attr]
            for part in (msg.get_body(("plain",)), msg.get_body(("html",)))
        )
        return headers, texts

    return view(first) == view(second)


# --- transient: delivered once the server behaves -------------------------------------------


@attrs.frozen
class Case:
    server: dict[str, Any]
    config: dict[str, Any]
    reason: Callable[[int], str]


TRANSIENT: dict[str, Case] = {
    "01-silent-server": Case(
        {"greeting": None},
        {"timeout": 0.5},
        lambda port: f"no greeting from 127.0.0.1:{port} within 0.5s",
    ),
    "02-421-at-greeting": Case(
        {"greeting": "421 4.3.2 raw.test busy, closing channel"},
        {},
        lambda _port: "the server is not accepting connections now",
    ),
    "04-drop-mid-data": Case(
        {"drop_mid_data": True},
        {},
        lambda port: f"the server closed the connection (127.0.0.1:{port})" + DUPLICATE,
    ),
    "11-454-to-starttls": Case(
        {
            "good_ehlo": EHLO_STARTTLS,
            "replies": {"STARTTLS": "454 4.7.0 TLS not available due to temporary reason"},
        },
        {"security": "starttls"},
        lambda _port: "the server answered 454",
    ),
    "14-endless-reply": Case(
        {"endless_on": "EHLO"},
        {},
        lambda _port: "the server sent an unreadable reply (Response too long)",
    ),
    "16-disconnect-after-auth": Case(
        {"close_after": "AUTH"},
        {"channel": PLAIN_AUTH},
        lambda port: f"the server closed the connection (127.0.0.1:{port})",
    ),
}


@pytest.mark.parametrize("name", list(TRANSIENT))
async def test_transient_hazard_ends_delivered_once(
    name: str, scripted: Any, files: Any, tls: Any
) -> None:
    case = TRANSIENT[name]
    options = dict(case.server)
    config = dict(case.config)
    if config.get("security") == "starttls":
        options["starttls_context"] = tls.server_context
        config["channel"] = f'tls_ca_file = "{tls.ca_file}"'
    server = await scripted(**options)
    outcome = await through_the_worker(files, server, heal=True, settle=0.3, **config)
    assert outcome.first_failure == case.reason(server.port)
    assert outcome.rows == {"ops@example.com": ("delivered", 2)}
    assert len(server.data) == 1  # once
    assert server.connections == 2  # the failed one, the good one: no storm


async def test_05_drop_after_the_dot_resends_the_same_message(scripted: Any, files: Any) -> None:
    """#5: it did arrive, the client cannot know: sent again, a duplicate with the same
    Message-ID (the receiving side can drop it), never a loss."""
    server = await scripted(drop_on=".")
    outcome = await through_the_worker(files, server, heal=True, settle=0.3)
    assert outcome.first_failure == (
        f"the server closed the connection (127.0.0.1:{server.port})" + DUPLICATE
    )
    assert outcome.rows == {"ops@example.com": ("delivered", 2)}
    first, second = server.message_ids()
    assert first == second
    assert same_message(*server.data)


async def test_06_4xx_on_one_of_three_recipients_retries_that_one_alone(
    scripted: Any, files: Any
) -> None:
    server = await scripted(rcpt={"b@x.org": "451 4.2.0 mailbox busy, try later"})
    outcome = await through_the_worker(files, server, heal=True, settle=0.3, to=THREE)
    assert outcome.first_failure == "the server refused this recipient"
    assert outcome.rows == {
        "a@x.org": ("delivered", 1),
        "b@x.org": ("delivered", 2),
        "c@x.org": ("delivered", 1),
    }
    assert server.envelopes == [(SENDER, ("a@x.org", "c@x.org")), (SENDER, ("b@x.org",))]
    first, second = server.message_ids()
    assert first == second  # the same message, to the one still waiting
    assert same_message(*server.data)


async def test_24_452_too_many_recipients_all_delivered_in_one_attempt(
    scripted: Any, files: Any
) -> None:
    to = tuple(f"r{i}@x.org" for i in range(1, 6))
    server = await scripted(rcpt_limit=2)  # never heals: it is how this server is
    outcome = await through_the_worker(files, server, heal=False, to=to, settle=0.3)
    assert outcome.rows == {r: ("delivered", 1) for r in to}
    assert outcome.first_failure is None
    assert server.envelopes == [
        (SENDER, ("r1@x.org", "r2@x.org")),
        (SENDER, ("r3@x.org", "r4@x.org")),
        (SENDER, ("r5@x.org",)),
    ]
    assert len(set(server.message_ids())) == 1
    assert server.connections == 1


# --- permanent: dead, the right reason, one connection ----------------------------------------


PERMANENT: dict[str, Case] = {
    "03-554-at-greeting": Case(
        {"greeting": "554 5.7.1 raw.test: no SMTP service for you"},
        {},
        lambda _port: "the server refused the connection",
    ),
    "08-5xx-on-mail-from": Case(
        {"replies": {"MAIL": "553 5.7.1 sender not owned by user mailer"}},
        {},
        lambda _port: "the server refused the sender dbackup@example.com",
    ),
    "09-530-auth-required": Case(
        {"replies": {"MAIL": "530 5.7.0 Authentication required"}},
        {},
        lambda _port: "the server requires authentication",
    ),
    "10-starttls-not-offered": Case(
        {},  # its EHLO offers AUTH, no STARTTLS
        {"security": "starttls"},
        lambda _port: "STARTTLS was required but the server did not offer it: possible downgrade",
    ),
    "19-plaintext-server-config-says-ssl": Case(
        {},
        {"security": "ssl"},
        lambda port: f"TLS failed: the server at 127.0.0.1:{port} is not speaking TLS",
    ),
}


@pytest.mark.parametrize("name", list(PERMANENT))
async def test_permanent_hazard_ends_dead_after_one_connection(
    name: str, scripted: Any, files: Any, tls: Any
) -> None:
    case = PERMANENT[name]
    server = await scripted(**case.server)
    config = dict(case.config)
    if config.get("security") in ("starttls", "ssl"):
        config["channel"] = f'tls_ca_file = "{tls.ca_file}"'
    outcome = await through_the_worker(files, server, heal=False, **config)
    assert outcome.rows == {"ops@example.com": ("dead", 1)}
    assert outcome.reasons["ops@example.com"] == case.reason(server.port)
    assert server.connections == 1  # and nothing more: no retry storm
    assert server.data == []


async def test_07_5xx_on_one_of_three_recipients_is_dead_the_others_delivered(
    scripted: Any, files: Any
) -> None:
    server = await scripted(rcpt={"c@x.org": "550 5.1.1 no such user here"})
    outcome = await through_the_worker(files, server, heal=False, to=THREE)
    assert outcome.rows == {
        "a@x.org": ("delivered", 1),
        "b@x.org": ("delivered", 1),
        "c@x.org": ("dead", 1),
    }
    assert outcome.reasons["c@x.org"] == "the server refused this recipient"
    assert server.envelopes == [(SENDER, ("a@x.org", "b@x.org"))]
    assert server.connections == 1


async def test_22_non_ascii_local_part_without_smtputf8_is_dead_for_that_one(
    scripted: Any, files: Any
) -> None:
    to = ("jörg@example.com", "ops@example.com")
    server = await scripted()  # no SMTPUTF8 offered
    outcome = await through_the_worker(files, server, heal=False, to=to)
    assert outcome.rows == {"jörg@example.com": ("dead", 1), "ops@example.com": ("delivered", 1)}
    assert outcome.reasons["jörg@example.com"] == (
        "this address has non-ASCII characters before the @, and the server does not "
        "support SMTPUTF8"
    )
    assert server.envelopes == [(SENDER, ("ops@example.com",))]
    assert server.connections == 1


async def test_12_untrusted_certificate_is_dead_after_one_connection(
    scripted: Any, files: Any, tls: Any
) -> None:
    stranger = trustme.CA()  # signs the server's certificate; nobody here trusts it
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    stranger.issue_cert("127.0.0.1").configure_cert(context)
    server = await scripted(good_ehlo=EHLO_STARTTLS, starttls_context=context)
    server.heal()  # nothing else is wrong with it
    outcome = await through_the_worker(
        files, server, heal=False, security="starttls", channel=f'tls_ca_file = "{tls.ca_file}"'
    )
    assert outcome.rows == {"ops@example.com": ("dead", 1)}
    reason = outcome.reasons["ops@example.com"]
    assert reason is not None
    assert reason.startswith("TLS certificate not trusted: "), reason
    assert server.connections == 1
    assert server.data == []


async def test_23_no_8bitmime_delivered_in_one_attempt(scripted: Any, files: Any) -> None:
    server = await scripted(good_ehlo="250-raw.test\r\n250 PIPELINING")
    server.heal()
    outcome = await through_the_worker(files, server, heal=False, settle=0.3)
    assert outcome.rows == {"ops@example.com": ("delivered", 1)}
    (data,) = server.data
    assert max(data) < 128


@attrs.define
class Resolver:
    """DNS for ``mail.example.invalid``: fails with ``error`` until healed, then answers
    with the server's address (the resolver is the one thing not real here)."""

    port: int
    error: int
    healed: bool = False
    asked: int = 0

    def heal(self) -> None:
        self.healed = True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != "mail.example.invalid":
                return await real(host, port, *args, **kwargs)
            self.asked += 1
            if not self.healed:
                raise socket.gaierror(self.error, "mocked resolver failure")
            return await real("127.0.0.1", port, *args, **kwargs)

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


async def test_21_temporary_dns_failure_is_retried_until_delivered(
    scripted: Any, files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await scripted()
    server.heal()
    resolver = Resolver(server.port, socket.EAI_AGAIN)
    resolver.install(monkeypatch)
    outcome = await through_the_worker(
        files, resolver, heal=True, settle=0.3, host="mail.example.invalid"
    )
    assert outcome.first_failure == (
        "cannot resolve host 'mail.example.invalid' now (temporary DNS failure)"
    )
    assert outcome.rows == {"ops@example.com": ("delivered", 2)}
    assert len(server.data) == 1


async def test_21_unknown_host_is_dead_after_one_lookup(
    files: Any, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = Resolver(free_port, socket.EAI_NONAME)
    resolver.install(monkeypatch)
    outcome = await through_the_worker(files, resolver, heal=False, host="mail.example.invalid")
    assert outcome.rows == {"ops@example.com": ("dead", 1)}
    assert outcome.reasons["ops@example.com"] == "unknown host 'mail.example.invalid'"
    assert resolver.asked == 1


# --- 17: bad credentials park the channel ------------------------------------------------------


async def test_17_535_parks_the_channel_until_the_password_changes_or_an_operator_retries(
    scripted: Any, files: Any, start_worker: Any, dbnotify: Any, until: Any, tmp_path: Path
) -> None:
    server = await scripted(replies={"AUTH": "535 5.7.8 Authentication credentials invalid"})
    send = SEND
    config = files.config(server.port, channel=PLAIN_AUTH)
    store = files.store()

    worker = await start_worker(config)
    run = await dbnotify(*send, "-c", str(config))
    assert run.code == 0, run.err
    await until(lambda: files.parked("ops-mail"), within=15)
    assert server.connections == 1
    # more notifications for the parked channel: queued, not attempted (no hammering)
    for _ in range(2):
        assert (await dbnotify(*send, "-c", str(config))).code == 0
    await asyncio.sleep(1.5)  # several times first_delay
    assert server.connections == 1
    assert sum(c.upper().startswith("AUTH") for c in server.commands) == 1  # one try
    assert [r.status for r in await store.history()] == ["pending"] * 3
    shown = await dbnotify("outbox", "-c", str(config))
    assert shown.out.startswith("channel ops-mail is PARKED since "), shown.out
    assert "Invalid login credentials; fix its configuration, or run: dbnotify retry " in shown.out
    assert "--channel ops-mail" in shown.out

    # a restart with the same configuration: still parked
    assert await worker.stop() == 0
    worker = await start_worker(config)
    await until(lambda: "due now" in worker.output, within=20)
    await asyncio.sleep(1.0)
    assert server.connections == 1

    # the password changed in the file (and the server now takes it): the queue goes
    assert await worker.stop() == 0
    server.heal()
    config = files.config(server.port, channel=PLAIN_AUTH.replace("s3cret", "n3w-s3cret"))
    worker = await start_worker(config)
    await until(lambda: files.counts(delivered=3), within=15)
    assert await store.parked() == {}
    assert len(set(server.message_ids())) == 3
    assert len(server.data) == 3

    assert await worker.stop() == 0


async def test_17_operator_retry_of_the_parked_channel_unparks_it(
    scripted: Any, files: Any, start_worker: Any, dbnotify: Any, until: Any
) -> None:
    """The account was fixed on the server's side: ``dbnotify retry --channel`` sends the
    waiting notification without a configuration change."""
    server = await scripted(replies={"AUTH": "535 5.7.8 Authentication credentials invalid"})
    config = files.config(server.port, channel=PLAIN_AUTH)
    store = files.store()
    worker = await start_worker(config)
    assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    await until(lambda: files.parked("ops-mail"), within=15)
    await asyncio.sleep(1.0)
    assert server.connections == 1
    server.heal()
    retried = await dbnotify("retry", "-c", str(config), "--channel", "ops-mail")
    assert retried.code == 0, retried.err
    assert retried.out.strip() == (
        f"1 delivery due again now; a running worker sends it (dbnotify worker -c {config}); "
        "channel ops-mail is no longer parked"
    )
    await until(lambda: files.counts(delivered=1), within=5)
    assert await store.parked() == {}
    assert server.connections == 2
    assert len(server.data) == 1
    assert await worker.stop() == 0


async def test_17_operator_retry_of_a_channel_leaves_its_delivered_notifications_alone(
    scripted: Any, files: Any, start_worker: Any, dbnotify: Any, until: Any
) -> None:
    server = await scripted(replies={"AUTH": "535 5.7.8 Authentication credentials invalid"})
    server.heal()
    config = files.config(server.port, channel=PLAIN_AUTH)
    store = files.store()
    worker = await start_worker(config)
    for _ in range(3):
        assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    await until(lambda: files.counts(delivered=3), within=15)
    assert await worker.stop() == 0
    server.healed = False  # the account locked on the server's side
    worker = await start_worker(config)  # a new process: a new connection, AUTH again
    assert (await dbnotify(*SEND, "-c", str(config))).code == 0
    await until(lambda: files.parked("ops-mail"), within=15)
    server.heal()
    retried = await dbnotify("retry", "-c", str(config), "--channel", "ops-mail")
    await until(lambda: files.counts(pending=0), within=5)
    await asyncio.sleep(0.5)
    assert await worker.stop() == 0
    assert (await store.counts())["delivered"] == 4
    assert len(server.data) == 4
    assert await store.history(status=RecipientState.DEAD) == []
    assert retried.out.strip() == (
        f"1 delivery due again now; a running worker sends it (dbnotify worker -c {config}); "
        "channel ops-mail is no longer parked"
    )
