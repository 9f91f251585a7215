"""Routing: which channels and which users an event goes to (dbnotify.router.plan)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dbnotify.config.load import load_config
from dbnotify.config.model import Config
from dbnotify.events import Condition, Event, JobRule, Severity, User, to_notification
from dbnotify.plugins import PluginRegistry
from dbnotify.results import Delivery, FailureKind, Status, Target
from dbnotify.router import Plan, plan

FAILURE = {"job_name": "nightly-pg", "error": "disk full"}
SUCCESS = {"job_name": "nightly-pg", "size_bytes": 10}
LOGIN = {"user_name": "alice", "email": "alice@example.com"}


@pytest.fixture
def make_config(
    registry: PluginRegistry, email_channel: Callable[..., dict[str, Any]]
) -> Callable[..., Config]:
    """A config with email channels ``ops-mail`` and ``dba-mail`` and the given sections."""

    def make(**sections: Any) -> Config:
        raw: dict[str, Any] = {
            "channels": {
                "ops-mail": email_channel(),
                "dba-mail": email_channel(to=["dba@example.com"]),
            }
        }
        raw.update(sections)
        return load_config(raw, registry)

    return make


def route(config: Config, event: Event, registry: PluginRegistry) -> Plan:
    """The plan, with the user-capable channels as the Notifier finds them."""
    capable = {
        name
        for name, settings in config.channels.items()
        if (plugin := registry.get(settings.type)) is not None and plugin.info.user_delivery
    }
    return plan(config, event, to_notification(event).severity, capable)


def targets(result: Plan) -> list[tuple[str, str, tuple[str, ...] | None]]:
    return [(d.channel, d.target.value, d.recipients) for d in result.deliveries]


# --- enabled, and which channels -------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("backup_success", SUCCESS),
        ("backup_failure", FAILURE),
        ("restore_complete", {}),
        ("restore_failure", {}),
        ("system_error", {"component": "db", "error": "x"}),
        ("test", {}),
    ],
)
def test_events_on_by_default_go_to_the_global_channels(
    event_type: str,
    data: dict[str, Any],
    make_config: Callable[..., Config],
    registry: PluginRegistry,
) -> None:
    config = make_config(routing={"channels": ["ops-mail"]})
    result = route(config, Event(event_type, data), registry)
    assert targets(result) == [("ops-mail", "channel", None)]
    assert result.reason is None
    assert result.outcomes == ()


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("config_backup", {}),
        ("user_login", LOGIN),
        ("user_created", LOGIN),
    ],
)
def test_events_off_by_default_are_not_sent(
    event_type: str,
    data: dict[str, Any],
    make_config: Callable[..., Config],
    registry: PluginRegistry,
) -> None:
    config = make_config(routing={"channels": ["ops-mail"]})
    result = route(config, Event(event_type, data), registry)
    assert result.deliveries == ()
    assert result.outcomes == ()
    assert result.reason == (
        f"event {event_type!r} is disabled; set routing.events."
        f"{event_type}.enabled = true to send it"
    )


def test_event_can_be_switched_off_and_on(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail"],
            "events": {"backup_failure": {"enabled": False}, "config_backup": {"enabled": True}},
        }
    )
    assert route(config, Event("backup_failure", FAILURE), registry).reason == (
        "event 'backup_failure' is disabled; set routing.events.backup_failure.enabled = true "
        "to send it"
    )
    assert targets(route(config, Event("config_backup"), registry)) == [
        ("ops-mail", "channel", None)
    ]


def test_custom_event_types_are_on_unless_switched_off(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={"channels": ["ops-mail"], "events": {"replication_lag": {"enabled": False}}}
    )
    assert targets(route(config, Event("disk_full", title="Disk Full"), registry)) == [
        ("ops-mail", "channel", None)
    ]
    assert route(config, Event("replication_lag", title="Lag"), registry).deliveries == ()


def test_event_own_channels_replace_the_global_ones(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail"],
            "events": {
                "backup_failure": {"channels": ["dba-mail", "ops-mail"]},
                "restore_failure": {"channels": []},
            },
        }
    )
    assert targets(route(config, Event("backup_failure", FAILURE), registry)) == [
        ("dba-mail", "channel", None),
        ("ops-mail", "channel", None),
    ]
    assert targets(route(config, Event("backup_success", SUCCESS), registry)) == [
        ("ops-mail", "channel", None)
    ]
    # an empty list is "no channels", not "the global ones": said as set, not as missing
    assert route(config, Event("restore_failure"), registry).reason == (
        "routing.events.restore_failure.channels is empty: this event is sent nowhere"
    )


def test_a_channel_named_twice_gets_one_delivery(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(routing={"channels": ["ops-mail", "dba-mail", "ops-mail"]})
    assert targets(route(config, Event("test"), registry)) == [
        ("ops-mail", "channel", None),
        ("dba-mail", "channel", None),
    ]


def test_no_channels_at_all(make_config: Callable[..., Config], registry: PluginRegistry) -> None:
    result = route(make_config(), Event("backup_failure", FAILURE), registry)
    assert result.deliveries == ()
    assert result.reason == (
        "no channels for event 'backup_failure'; set routing.channels, "
        "or routing.events.backup_failure.channels"
    )
    assert result.unrouted  # a gap in the configuration, not one of its rules


def test_an_event_left_out_by_a_rule_is_not_unrouted(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={"channels": ["ops-mail"], "events": {"restore_failure": {"channels": []}}},
        jobs={"nightly-pg": {"condition": "failure_only"}},
    )
    emptied = route(config, Event("restore_failure"), registry)
    filtered = route(config, Event("backup_success", SUCCESS), registry)
    for planned in (emptied, filtered):
        assert planned.deliveries == ()
        assert planned.reason
        assert not planned.unrouted


# --- per-job rules ---------------------------------------------------------------------------


def test_job_rule_from_config_chooses_channels(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={"channels": ["ops-mail"]}, jobs={"nightly-pg": {"channels": ["dba-mail"]}}
    )
    assert targets(route(config, Event("backup_failure", FAILURE), registry)) == [
        ("dba-mail", "channel", None)
    ]
    other = Event("backup_failure", {"job_name": "hourly-mysql"})
    assert targets(route(config, other, registry)) == [("ops-mail", "channel", None)]


def test_a_job_with_no_channels_on_purpose_is_said_so(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(routing={"channels": ["ops-mail"]}, jobs={"scratch": {"channels": []}})
    planned = route(config, Event("backup_failure", {"job_name": "scratch"}), registry)
    assert planned.deliveries == ()
    assert planned.reason == "jobs.scratch.channels is empty: this job's events are sent nowhere"


def test_job_rule_without_channels_keeps_the_event_channels(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail"],
            "events": {"backup_failure": {"channels": ["dba-mail"]}},
        },
        jobs={"nightly-pg": {"condition": "always"}},
    )
    assert targets(route(config, Event("backup_failure", FAILURE), registry)) == [
        ("dba-mail", "channel", None)
    ]


@pytest.mark.parametrize(
    ("condition", "event_type", "data", "reason"),
    [
        ("failure_only", "backup_success", SUCCESS, "job 'nightly-pg' notifies on failure only"),
        ("success_only", "backup_failure", FAILURE, "job 'nightly-pg' notifies on success only"),
        ("failure_only", "backup_failure", FAILURE, None),
        ("success_only", "backup_success", SUCCESS, None),
        ("always", "backup_success", SUCCESS, None),
        ("always", "backup_failure", FAILURE, None),
    ],
)
def test_job_condition_from_config(
    condition: str,
    event_type: str,
    data: dict[str, Any],
    reason: str | None,
    make_config: Callable[..., Config],
    registry: PluginRegistry,
) -> None:
    config = make_config(
        routing={"channels": ["ops-mail"]}, jobs={"nightly-pg": {"condition": condition}}
    )
    result = route(config, Event(event_type, data), registry)
    assert result.reason == reason
    assert bool(result.deliveries) is (reason is None)


def test_job_rule_from_the_host_wins_over_the_config(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={"channels": ["ops-mail"]},
        jobs={"nightly-pg": {"channels": ["dba-mail"], "condition": "failure_only"}},
    )
    from_host = JobRule(channels=["ops-mail", "dba-mail"], condition="always")
    event = Event("backup_success", SUCCESS, job=from_host)
    assert targets(route(config, event, registry)) == [
        ("ops-mail", "channel", None),
        ("dba-mail", "channel", None),
    ]
    # and the host's condition applies
    event = Event("backup_failure", FAILURE, job=JobRule(condition=Condition.SUCCESS_ONLY))
    assert route(config, event, registry).reason == "job 'nightly-pg' notifies on success only"


def test_job_rules_only_apply_to_backup_events(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={"channels": ["ops-mail"]},
        jobs={"nightly-pg": {"channels": ["dba-mail"], "condition": "success_only"}},
    )
    event = Event("system_error", {"component": "x", "error": "y", "job_name": "nightly-pg"})
    assert targets(route(config, event, registry)) == [("ops-mail", "channel", None)]


def test_job_rule_from_the_host_naming_an_unknown_channel(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(routing={"channels": ["ops-mail"]})
    event = Event("backup_failure", FAILURE, job=JobRule(channels=["pager", "ops-mail"]))
    result = route(config, event, registry)
    assert targets(result) == [("ops-mail", "channel", None)]
    (outcome,) = result.outcomes
    assert (outcome.channel, outcome.channel_type, outcome.target) == (
        "pager",
        None,
        Target.CHANNEL,
    )
    (failure,) = outcome.recipients
    assert failure.status is Status.FAILED
    assert failure.kind is FailureKind.PERMANENT
    assert failure.reason == "no channel named 'pager' is configured"
    assert failure.hint == (
        "define [channels.pager] or remove it from the routing (configured: ops-mail, dba-mail)"
    )


# --- the user's own copy ----------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["user_login", "user_created"])
def test_notify_user_none_sends_to_admins_only(
    event_type: str, make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail"],
            "events": {event_type: {"enabled": True, "notify_user": "none"}},
        }
    )
    assert targets(route(config, Event(event_type, LOGIN), registry)) == [
        ("ops-mail", "channel", None)
    ]


@pytest.mark.parametrize("event_type", ["user_login", "user_created"])
def test_notify_user_also_sends_one_copy_to_the_user(
    event_type: str, make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail", "dba-mail"],
            "events": {event_type: {"enabled": True, "notify_user": "also"}},
        }
    )
    result = route(config, Event(event_type, LOGIN), registry)
    # both admin channels, and one user copy (not one per email channel)
    assert targets(result) == [
        ("ops-mail", "channel", None),
        ("dba-mail", "channel", None),
        ("ops-mail", "user", ("alice@example.com",)),
    ]
    assert result.outcomes == ()


@pytest.mark.parametrize("event_type", ["user_login", "user_created"])
def test_notify_user_only_sends_to_the_user_alone(
    event_type: str, make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["dba-mail", "ops-mail"],
            "events": {event_type: {"enabled": True, "notify_user": "only"}},
        }
    )
    result = route(config, Event(event_type, LOGIN), registry)
    assert result.deliveries == (Delivery("dba-mail", Target.USER, ("alice@example.com",)),)


def test_user_channel_setting_picks_the_channel(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail"],
            "user_channel": "dba-mail",
            "events": {"user_login": {"enabled": True, "notify_user": "only"}},
        }
    )
    assert targets(route(config, Event("user_login", LOGIN), registry)) == [
        ("dba-mail", "user", ("alice@example.com",))
    ]


def test_user_address_from_the_user_object(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail"],
            "events": {"user_created": {"enabled": True, "notify_user": "only"}},
        }
    )
    event = Event("user_created", user=User(name="bob", email="bob@example.com"))
    assert targets(route(config, event, registry)) == [("ops-mail", "user", ("bob@example.com",))]


def test_user_copy_goes_through_an_email_channel_even_if_not_routed(
    registry: PluginRegistry, fake_channel: Any, email_channel: Callable[..., dict[str, Any]]
) -> None:
    registry.register("chat", fake_channel())
    config = load_config(
        {
            "channels": {"team-chat": {"type": "chat"}, "ops-mail": email_channel()},
            "routing": {
                "channels": ["team-chat"],
                "events": {"user_login": {"enabled": True, "notify_user": "also"}},
            },
        },
        registry,
    )
    assert targets(route(config, Event("user_login", LOGIN), registry)) == [
        ("team-chat", "channel", None),
        ("ops-mail", "user", ("alice@example.com",)),
    ]


def test_user_without_an_address_is_skipped_with_a_reason(
    make_config: Callable[..., Config], registry: PluginRegistry
) -> None:
    config = make_config(
        routing={
            "channels": ["ops-mail"],
            "events": {"user_login": {"enabled": True, "notify_user": "also"}},
        }
    )
    # plan() reads the event as it is; to_notification() would refuse a user_login without email
    planned = plan(
        config, Event("user_login", {"user_name": "alice"}), Severity.INFO, {"ops-mail", "dba-mail"}
    )
    assert targets(planned) == [("ops-mail", "channel", None)]
    (skip,) = planned.outcomes
    assert (skip.channel, skip.target, skip.status) == ("ops-mail", Target.USER, Status.SKIPPED)
    assert [(r.recipient, r.reason) for r in skip.recipients] == [
        ("(user)", "event 'user_login' has no user email address (data key 'email')")
    ]


def test_no_channel_can_reach_the_user(registry: PluginRegistry, fake_channel: Any) -> None:
    registry.register("chat", fake_channel())
    config = load_config(
        {
            "channels": {"team-chat": {"type": "chat"}},
            "routing": {
                "channels": ["team-chat"],
                "events": {"user_login": {"enabled": True, "notify_user": "only"}},
            },
        },
        registry,
    )
    result = route(config, Event("user_login", LOGIN), registry)
    assert result.deliveries == ()
    (skip,) = result.outcomes
    assert (skip.channel, skip.target, skip.status) == ("(none)", Target.USER, Status.SKIPPED)
    assert [(r.recipient, r.reason) for r in skip.recipients] == [
        (
            "alice@example.com",
            "no channel can deliver to a user's address; add an email "
            "channel (routing.user_channel may name it)",
        )
    ]
