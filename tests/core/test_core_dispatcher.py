"""Delivering: deadlines, plugin bugs as results, sync hosts, and real mail end to end."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbnotify import Event, EventError, Notifier, Status, load_config
from dbnotify.events import User
from dbnotify.plugins import PluginRegistry
from dbnotify.results import ChannelResult, DispatchResult, FailureKind, RecipientResult, Target
from dbnotify.testing.smtpd import LocalSMTPServer

FAILURE = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})


@pytest.fixture
def notifier_with(fake_channel: Any) -> Callable[..., tuple[Notifier, Any]]:
    """``notifier_with(behaviour, deadline=0.2)``: a Notifier over one in-test plugin."""

    def make(
        behaviour: Any = None, *, deadline: float = 0.2, channels: tuple[str, ...] = ("chat",)
    ) -> tuple[Notifier, Any]:
        plugin = fake_channel(behaviour)
        registry = PluginRegistry(entry_points=False, environ={})
        registry.register("fake", plugin, distribution="acme-fake", version="1.2")
        config = load_config(
            {
                "channels": {name: {"type": "fake", "target": f"room-{name}"} for name in channels},
                "routing": {"channels": list(channels)},
                "dispatch": {"deadline": deadline},
            },
            registry,
        )
        return Notifier(config, plugins=registry), plugin

    return make


def only(result: DispatchResult) -> RecipientResult:
    (recipient,) = result.recipients
    return recipient


# --- what the host gets ---------------------------------------------------------------------


async def test_delivered_result(notifier_with: Callable[..., tuple[Notifier, Any]]) -> None:
    notifier, plugin = notifier_with()
    result = await notifier.notify(FAILURE)
    assert result.ok
    assert result.event_type == "backup_failure"
    assert result.reason is None
    assert result.failed == ()
    (channel,) = result.channels
    assert (channel.channel, channel.channel_type, channel.target, channel.status) == (
        "chat",
        "fake",
        Target.CHANNEL,
        Status.DELIVERED,
    )
    assert channel.duration >= 0
    assert only(result) == RecipientResult.delivered("room-chat")
    # the plugin got the described notification, its own config, and no recipients override
    ((config, notification, recipients),) = plugin.calls
    assert config.target == "room-chat"
    assert notification.id == result.notification_id
    assert notification.message == "Backup job 'nightly-pg' failed. Error: disk full"
    assert recipients is None


async def test_send_past_the_deadline_is_a_transient_failure(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    async def slow(_recipients: Any) -> list[RecipientResult]:
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    notifier, _ = notifier_with(slow, deadline=0.2)
    started = time.monotonic()
    result = await notifier.notify(FAILURE)
    assert time.monotonic() - started < 5
    assert not result.ok
    failure = only(result)
    assert failure.status is Status.FAILED
    assert failure.kind is FailureKind.TRANSIENT
    assert failure.reason == "not delivered within 0.2s"
    assert failure.hint == (
        "the server is slow or unreachable; raise dispatch.deadline if it is merely slow"
    )
    assert failure.recipient == "(channel)"


async def test_plugin_that_raises_is_a_permanent_failure_naming_it(
    notifier_with: Callable[..., tuple[Notifier, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(_recipients: Any) -> list[RecipientResult]:
        raise RuntimeError("boom")

    notifier, _ = notifier_with(broken)
    result = await notifier.notify(FAILURE)  # never raises into the host
    failure = only(result)
    assert failure.kind is FailureKind.PERMANENT
    assert failure.reason == "the fake plugin raised RuntimeError: boom"
    assert failure.hint == "this is a bug in acme-fake; please report it"
    assert result.channels[0].status is Status.FAILED
    assert "channel 'chat': the fake plugin raised RuntimeError: boom (run with" in caplog.text


async def test_a_plugins_exception_never_shows_the_channels_secret(
    fake_channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin that raises with its URL (token included) in the message: the result,
    the log line and the traceback (``-v``) all have the token masked."""
    token = "tok-Secret-99"

    async def broken(_recipients: Any) -> list[RecipientResult]:
        raise RuntimeError(f"401 from https://hooks.example.com/x?token={token}")

    registry = PluginRegistry(entry_points=False, environ={})
    registry.register("fake", fake_channel(broken), distribution="acme-fake", version="1.2")
    config = load_config(
        {
            "channels": {"chat": {"type": "fake", "token": token}},
            "routing": {"channels": ["chat"]},
        },
        registry,
    )
    caplog.set_level(logging.INFO)
    failure = only(await Notifier(config, plugins=registry).notify(FAILURE))
    assert failure.reason == (
        "the fake plugin raised RuntimeError: 401 from https://hooks.example.com/x?token=********"
    )
    assert "Traceback" in caplog.text
    assert token not in caplog.text


@pytest.mark.parametrize("nothing", [[], (), None])
async def test_plugin_that_returns_nothing(
    nothing: Any, notifier_with: Callable[..., tuple[Notifier, Any]]
) -> None:
    async def silent(_recipients: Any) -> Any:
        return nothing

    notifier, _ = notifier_with(silent)
    failure = only(await notifier.notify(FAILURE))
    assert failure.status is Status.FAILED
    assert failure.kind is FailureKind.PERMANENT
    assert failure.reason == "the fake plugin reported no result"
    assert failure.hint == "this is a bug in acme-fake; please report it"


async def test_targets_run_at_once(notifier_with: Callable[..., tuple[Notifier, Any]]) -> None:
    async def takes_a_while(_recipients: Any) -> list[RecipientResult]:
        await asyncio.sleep(0.3)
        return [RecipientResult.delivered("room")]

    notifier, _ = notifier_with(takes_a_while, deadline=5, channels=("a", "b", "c", "d"))
    started = time.monotonic()
    result = await notifier.notify(FAILURE)
    assert time.monotonic() - started < 0.9  # four in a row would take 1.2 s
    assert [c.channel for c in result.channels] == ["a", "b", "c", "d"]
    assert result.ok


async def test_one_slow_channel_does_not_spoil_the_others(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    calls = 0

    async def first_is_slow(_recipients: Any) -> list[RecipientResult]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(30)
        return [RecipientResult.delivered("room")]

    notifier, _ = notifier_with(first_is_slow, deadline=0.2, channels=("a", "b"))
    result = await notifier.notify(FAILURE)
    assert [(c.channel, c.status) for c in result.channels] == [
        ("a", Status.FAILED),
        ("b", Status.DELIVERED),
    ]
    assert [r.reason for r in result.failed] == ["not delivered within 0.2s"]


async def test_bad_event_raises_before_anything_is_sent(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    notifier, plugin = notifier_with()
    with pytest.raises(EventError, match="needs data key"):
        await notifier.notify(Event("backup_failure", {"error": "x"}))
    assert plugin.calls == []


async def test_disabled_event_says_why(
    notifier_with: Callable[..., tuple[Notifier, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    notifier, plugin = notifier_with()
    with caplog.at_level(logging.INFO, logger="dbnotify"):
        result = await notifier.notify(Event("config_backup"))
    assert result.channels == ()
    assert result.ok
    assert result.reason == (
        "event 'config_backup' is disabled; set "
        "routing.events.config_backup.enabled = true to send it"
    )
    assert plugin.calls == []
    assert "not sent: event 'config_backup' is disabled" in caplog.text


async def test_failures_are_logged_with_their_reason(
    notifier_with: Callable[..., tuple[Notifier, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async def refused(_recipients: Any) -> list[RecipientResult]:
        return [RecipientResult.failed("room", FailureKind.PERMANENT, "room is archived")]

    notifier, _ = notifier_with(refused)
    result = await notifier.notify(FAILURE)
    (record,) = [r for r in caplog.records if r.name == "dbnotify.notifier"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"event backup_failure ({result.notification_id}) channel chat channel room: failed "
        "(permanent: room is archived)"
    )


async def test_runtime_unknown_channel_is_a_permanent_failure(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    from dbnotify.events import JobRule

    notifier, _ = notifier_with()
    result = await notifier.notify(
        Event("backup_failure", {"job_name": "j"}, job=JobRule(channels=["pager"]))
    )
    (channel,) = result.channels
    assert (channel.channel, channel.channel_type) == ("pager", None)
    failure = only(result)
    assert (failure.kind, failure.reason) == (
        FailureKind.PERMANENT,
        "no channel named 'pager' is configured",
    )


async def test_channel_whose_plugin_is_gone(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    notifier, _ = notifier_with()
    # the same config, run where the fake plugin is not installed
    bare = Notifier(notifier.config, plugins=PluginRegistry(entry_points=False, environ={}))
    failure = only(await bare.notify(FAILURE))
    assert failure.kind is FailureKind.PERMANENT
    assert failure.reason == (
        "unknown channel type 'fake' (installed: none; channel types "
        "come from plugins such as dbnotify-email)"
    )


# --- sync hosts -------------------------------------------------------------------------------


def test_notify_sync_without_a_running_loop(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    notifier, plugin = notifier_with()
    result = notifier.notify_sync(FAILURE)
    assert result.ok
    assert len(plugin.calls) == 1


async def test_notify_sync_inside_a_running_loop(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    threads: list[str] = []

    async def record(_recipients: Any) -> list[RecipientResult]:
        threads.append(threading.current_thread().name)
        await asyncio.sleep(0)
        return [RecipientResult.delivered("room")]

    notifier, _ = notifier_with(record)
    result = notifier.notify_sync(FAILURE)  # from a coroutine: no "loop already running"
    assert result.ok
    assert threads
    assert threads != [threading.current_thread().name]


# --- channel test -------------------------------------------------------------------------------


async def test_channel_test_reports_stages(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    notifier, _ = notifier_with()
    report = await notifier.test("chat")
    assert report.ok
    assert [(s.name, s.ok, s.detail) for s in report.stages] == [
        ("connect", True, "reached room-chat")
    ]


async def test_channel_test_of_an_unknown_channel(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    notifier, _ = notifier_with()
    report = await notifier.test("pager")
    assert not report.ok
    assert [(s.name, s.detail) for s in report.stages] == [
        ("configuration", "no channel named 'pager' is configured (configured: chat)")
    ]


async def test_channel_test_past_the_deadline(
    notifier_with: Callable[..., tuple[Notifier, Any]],
) -> None:
    async def slow(_recipients: Any) -> None:
        await asyncio.sleep(30)

    notifier, _ = notifier_with(slow, deadline=0.2)
    (stage,) = (await notifier.test("chat")).stages
    assert (stage.name, stage.ok, stage.detail) == (
        "deadline",
        False,
        "the test did not finish within 0.2s",
    )


async def test_channel_test_that_raises(notifier_with: Callable[..., tuple[Notifier, Any]]) -> None:
    async def broken(_recipients: Any) -> None:
        raise OSError("no route")

    notifier, _ = notifier_with(broken)
    (stage,) = (await notifier.test("chat")).stages
    assert (stage.name, stage.ok, stage.detail, stage.hint) == (
        "plugin",
        False,
        "the fake plugin raised OSError: no route",
        "this is a bug in acme-fake; please report it",
    )


# --- end to end through the real email plugin -------------------------------------------------


@pytest.fixture
async def smtp_config(
    smtp: LocalSMTPServer, local_email_channel: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    return {
        "channels": {
            "ops-mail": local_email_channel(smtp.port),
            "dba-mail": local_email_channel(smtp.port, to=["dba@example.com"]),
        },
        "routing": {"channels": ["ops-mail"]},
        "dispatch": {"deadline": 10},
    }


async def test_backup_failure_arrives_by_email(
    smtp: LocalSMTPServer, smtp_config: dict[str, Any]
) -> None:
    notifier = Notifier(load_config(smtp_config))
    result = await notifier.notify(FAILURE)
    assert result.ok, result
    assert [(r.recipient, r.status) for r in result.recipients] == [
        ("ops@example.com", Status.DELIVERED),
        ("dba@example.com", Status.DELIVERED),
    ]
    (received,) = smtp.messages
    assert received.mail_from == "dbackup@example.com"
    assert received.rcpt_tos == ("ops@example.com", "dba@example.com")
    message = received.message
    assert message["Subject"] == "[DBackup] Backup Failed: nightly-pg"
    assert message["X-DBackup-Event"] == "backup_failure"
    text = received.part("plain")
    assert "Backup job 'nightly-pg' failed. Error: disk full" in text
    html = received.part("html")
    assert "#dc2626" in html
    assert "Backup job &#39;nightly-pg&#39; failed.</p>" in html  # the error once: in its field
    assert html.count("disk full") == 1


async def test_user_login_also_sends_one_private_copy(
    smtp: LocalSMTPServer, smtp_config: dict[str, Any]
) -> None:
    smtp_config["routing"] = {
        "channels": ["ops-mail", "dba-mail"],
        "events": {"user_login": {"enabled": True, "notify_user": "also"}},
    }
    notifier = Notifier(load_config(smtp_config))
    event = Event(
        "user_login",
        {"user_name": "alice", "ip_address": "203.0.113.7"},
        user=User("alice", "alice@example.com"),
    )
    result = await notifier.notify(event)
    assert result.ok, result
    assert [
        (c.channel, c.target, [r.recipient for r in c.recipients]) for c in result.channels
    ] == [
        ("ops-mail", Target.CHANNEL, ["ops@example.com", "dba@example.com"]),
        ("dba-mail", Target.CHANNEL, ["dba@example.com"]),
        ("ops-mail", Target.USER, ["alice@example.com"]),
    ]
    assert sorted(m.rcpt_tos for m in smtp.messages) == [
        ("alice@example.com",),
        ("dba@example.com",),
        ("ops@example.com", "dba@example.com"),
    ]
    (private,) = [m for m in smtp.messages if m.rcpt_tos == ("alice@example.com",)]
    headers = "\n".join(f"{k}: {v}" for k, v in private.message.items())
    assert private.message["To"] == "alice@example.com"
    assert "ops@example.com" not in headers
    assert "dba@example.com" not in headers
    assert "ops@example.com" not in private.data.decode()
    # The user's copy is worded for the user (DBackup reused the admins' message).
    assert private.message["Subject"] == "[DBackup] New Sign-in to Your Account"
    text = private.part("plain")
    assert (
        "Someone signed in to your account 'alice'. If this was not you, change your "
        "password and tell your administrator."
    ) in " ".join(text.split())  # the text part wraps at 76 columns
    assert "IP Address: 203.0.113.7" in text
    assert "Email:" not in text
    (admins,) = [m for m in smtp.messages if m.rcpt_tos == ("dba@example.com",)]
    assert admins.message["Subject"] == "[DBackup] User Login"


async def test_user_created_only_goes_to_the_user(
    smtp: LocalSMTPServer, smtp_config: dict[str, Any]
) -> None:
    smtp_config["routing"] = {
        "channels": ["ops-mail", "dba-mail"],
        "events": {"user_created": {"enabled": True, "notify_user": "only"}},
    }
    notifier = Notifier(load_config(smtp_config))
    result = await notifier.notify(
        Event(
            "user_created", {"user_name": "bob", "email": "bob@example.com", "created_by": "alice"}
        )
    )
    assert [(c.channel, c.target) for c in result.channels] == [("ops-mail", Target.USER)]
    (received,) = smtp.messages
    assert received.rcpt_tos == ("bob@example.com",)
    html = received.part("html")
    assert "An account &#39;bob&#39; was created for you by &#39;alice&#39;." in html


async def test_unreachable_server_is_a_result_not_an_exception(
    local_email_channel: Callable[..., dict[str, Any]],
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notifier = Notifier(
        load_config({"channels": {"m": local_email_channel(port)}, "routing": {"channels": ["m"]}})
    )
    result = await notifier.notify(FAILURE)
    assert not result.ok
    assert {r.status for r in result.recipients} == {Status.FAILED}
    assert all(r.kind is FailureKind.TRANSIENT for r in result.failed)


async def test_from_config_file(tmp_path: Path, smtp: LocalSMTPServer) -> None:
    path = tmp_path / "dbnotify.toml"
    path.write_text(
        f"""
[channels.ops-mail]
type = "email"
host = "127.0.0.1"
port = {smtp.port}
security = "none"
from = "DBackup <dbackup@example.com>"
to = "ops@example.com"

[routing]
channels = ["ops-mail"]
""",
        encoding="utf-8",
    )
    notifier = Notifier.from_config(path)
    result = await notifier.notify(Event("test"))
    assert result.ok
    assert smtp.messages[0].message["Subject"] == "[DBackup] Test Notification"


def test_results_summarise_per_channel() -> None:
    delivered = RecipientResult.delivered("a")
    failed = RecipientResult.failed("b", FailureKind.TRANSIENT, "try later")
    skipped = RecipientResult.skipped("c", "no address")
    mixed = ChannelResult("m", "email", Target.CHANNEL, (delivered, failed, skipped))
    only_skipped = ChannelResult("u", "email", Target.USER, (skipped,))
    fine = ChannelResult("f", "email", Target.CHANNEL, (delivered, skipped))
    assert (mixed.status, only_skipped.status, fine.status) == (
        Status.FAILED,
        Status.SKIPPED,
        Status.DELIVERED,
    )
    result = DispatchResult("x", "id", (mixed, only_skipped))
    assert not result.ok
    assert result.failed == (failed,)
    assert DispatchResult("x", "id", (only_skipped, fine)).ok


async def test_aclose_calls_each_plugins_shutdown_once() -> None:
    from dbnotify.hookspecs import ChannelInfo, hookimpl
    from dbnotify.plugins import PluginRegistry

    calls: list[str] = []

    class Closing:
        @hookimpl
        def channel_info(self) -> ChannelInfo:
            return ChannelInfo("closing test channel", dict)

        @hookimpl
        def validate_config(self, options: Any) -> dict[str, Any]:
            return dict(options)

        @hookimpl
        async def send(
            self, config: Any, notification: Any, renderer: Any, recipients: Any
        ) -> list[Any]:
            return []

        @hookimpl
        async def test(
            self, config: Any, notification: Any, renderer: Any, send_message: bool
        ) -> Any:
            raise NotImplementedError

        @hookimpl
        async def shutdown(self) -> None:
            calls.append("shutdown")

    registry = PluginRegistry(entry_points=False)
    registry.register("closing", Closing())
    config = load_config(
        {"channels": {"a": {"type": "closing"}, "b": {"type": "closing"}}}, registry
    )
    async with Notifier(config, plugins=registry):
        pass
    assert calls == ["shutdown"]
    Notifier(config, plugins=registry).notify_sync(Event("test"))
    assert calls == ["shutdown", "shutdown"]
