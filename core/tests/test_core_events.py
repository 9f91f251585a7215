"""The event catalogue: what each DBackup event reads like, and the host's mistakes."""

from __future__ import annotations

import datetime as dt

import pytest

from dbnotify import humanize
from dbnotify.errors import EventError
from dbnotify.events import CATALOGUE, Event, Severity, User, to_notification


def fields_of(event: Event) -> dict[str, str]:
    return {f.label: f.value for f in to_notification(event).fields}


# --- every catalogue event ---------------------------------------------------------

CASES = [
    pytest.param(
        "backup_success",
        {
            "job_name": "nightly-pg",
            "source_name": "pg-main",
            "duration_ms": 150000,
            "size_bytes": 1610612736,
        },
        Severity.SUCCESS,
        "Backup Successful",
        "Backup job 'nightly-pg' completed successfully.",
        {"Job": "nightly-pg", "Source": "pg-main", "Duration": "2m 30s", "Size": "1.5 GiB"},
        id="backup_success",
    ),
    pytest.param(
        "backup_failure",
        {"job_name": "nightly-pg", "source_name": "pg-main", "error": "disk full"},
        Severity.FAILURE,
        "Backup Failed",
        "Backup job 'nightly-pg' failed. Error: disk full",
        {"Job": "nightly-pg", "Source": "pg-main", "Error": "disk full"},
        id="backup_failure",
    ),
    pytest.param(
        "backup_failure",
        {"job_name": "nightly-pg"},
        Severity.FAILURE,
        "Backup Failed",
        "Backup job 'nightly-pg' failed.",
        {"Job": "nightly-pg"},
        id="backup_failure-without-error",
    ),
    pytest.param(
        "restore_complete",
        {"source_name": "pg-main", "target_database": "staging", "duration_ms": 850},
        Severity.SUCCESS,
        "Restore Completed",
        "Restore of 'pg-main' to 'staging' completed successfully.",
        {"Source": "pg-main", "Target Database": "staging", "Duration": "850 ms"},
        id="restore_complete",
    ),
    pytest.param(
        "restore_complete",
        {},
        Severity.SUCCESS,
        "Restore Completed",
        "Restore completed successfully.",
        {},
        id="restore_complete-bare",
    ),
    pytest.param(
        "restore_failure",
        {"target_database": "staging", "error": "role missing"},
        Severity.FAILURE,
        "Restore Failed",
        "Restore to 'staging' failed. Error: role missing",
        {"Target Database": "staging", "Error": "role missing"},
        id="restore_failure",
    ),
    pytest.param(
        "config_backup",
        {"file_name": "config-2024.json.enc", "size_bytes": 2048, "encrypted": True},
        Severity.INFO,
        "Configuration Backup Created",
        "Configuration backup 'config-2024.json.enc' was created.",
        {"File": "config-2024.json.enc", "Size": "2 KiB", "Encrypted": "Yes"},
        id="config_backup",
    ),
    pytest.param(
        "config_backup",
        {"encrypted": "false"},
        Severity.INFO,
        "Configuration Backup Created",
        "A configuration backup was created.",
        {"Encrypted": "No"},
        id="config_backup-bare",
    ),
    pytest.param(
        "system_error",
        {"component": "scheduler", "error": "queue stalled", "details": "worker 3 timed out"},
        Severity.FAILURE,
        "System Error",
        "An error occurred in scheduler: queue stalled",
        {"Component": "scheduler", "Error": "queue stalled", "Details": "worker 3 timed out"},
        id="system_error",
    ),
    pytest.param(
        "user_login",
        {
            "user_name": "alice",
            "email": "alice@example.com",
            "ip_address": "203.0.113.7",
            "user_agent": "Firefox",
        },
        Severity.INFO,
        "User Login",
        "User 'alice' logged in.",
        {
            "User": "alice",
            "Email": "alice@example.com",
            "IP Address": "203.0.113.7",
            "User Agent": "Firefox",
        },
        id="user_login",
    ),
    pytest.param(
        "user_created",
        {"user_name": "bob", "email": "bob@example.com", "created_by": "alice"},
        Severity.SUCCESS,
        "New User Created",
        "A new user account 'bob' was created by 'alice'.",
        {"User": "bob", "Email": "bob@example.com", "Created By": "alice"},
        id="user_created",
    ),
    pytest.param(
        "user_created",
        {"user_name": "bob", "email": "bob@example.com"},
        Severity.SUCCESS,
        "New User Created",
        "A new user account 'bob' was created.",
        {"User": "bob", "Email": "bob@example.com"},
        id="user_created-by-nobody",
    ),
    pytest.param(
        "test",
        {},
        Severity.INFO,
        "Test Notification",
        "This is a test notification. If you can read it, the channel works.",
        {},
        id="test",
    ),
]


@pytest.mark.parametrize(("event_type", "data", "severity", "title", "message", "fields"), CASES)
def test_catalogue_event_reads_as_documented(
    event_type: str,
    data: dict[str, object],
    severity: Severity,
    title: str,
    message: str,
    fields: dict[str, str],
) -> None:
    notification = to_notification(Event(event_type, data))
    assert notification.event_type == event_type
    assert notification.severity is severity
    assert notification.title == title
    assert notification.message == message
    assert {f.label: f.value for f in notification.fields} == fields
    # fields keep the catalogue's order
    assert [f.label for f in notification.fields] == list(fields)


def test_every_catalogue_event_is_covered_above() -> None:
    covered = {case.values[0] for case in CASES}
    assert covered == set(CATALOGUE)


def test_catalogue_matches_the_design_table() -> None:
    """events.md: severity, title and default of every event."""
    table = {
        "backup_success": (Severity.SUCCESS, "Backup Successful", True),
        "backup_failure": (Severity.FAILURE, "Backup Failed", True),
        "restore_complete": (Severity.SUCCESS, "Restore Completed", True),
        "restore_failure": (Severity.FAILURE, "Restore Failed", True),
        "config_backup": (Severity.INFO, "Configuration Backup Created", False),
        "system_error": (Severity.FAILURE, "System Error", True),
        "user_login": (Severity.INFO, "User Login", False),
        "user_created": (Severity.SUCCESS, "New User Created", False),
        "test": (Severity.INFO, "Test Notification", True),
    }
    assert {k: (s.severity, s.title, s.enabled_by_default) for k, s in CATALOGUE.items()} == table
    assert {k for k, s in CATALOGUE.items() if s.per_job} == {"backup_success", "backup_failure"}
    assert {k for k, s in CATALOGUE.items() if s.user_event} == {"user_login", "user_created"}


def test_job_name_is_carried_for_subjects() -> None:
    assert (
        to_notification(Event("backup_failure", {"job_name": "nightly-pg"})).job_name
        == "nightly-pg"
    )
    assert to_notification(Event("restore_complete")).job_name is None


def test_extra_keys_follow_the_known_ones_and_empty_values_are_left_out() -> None:
    event = Event(
        "backup_success",
        {"retention_days": 7, "job_name": "nightly-pg", "source_name": "", "size_bytes": None},
    )
    assert fields_of(event) == {"Job": "nightly-pg", "Retention Days": "7"}


def test_unparseable_numbers_are_shown_as_given() -> None:
    event = Event("backup_success", {"job_name": "j", "size_bytes": "big", "duration_ms": "?"})
    assert fields_of(event) == {"Job": "j", "Duration": "?", "Size": "big"}


def test_user_object_fills_user_name_and_email() -> None:
    event = Event("user_login", user=User(name="alice", email="alice@example.com"))
    notification = to_notification(event)
    assert notification.message == "User 'alice' logged in."
    assert fields_of(event) == {"User": "alice", "Email": "alice@example.com"}
    assert event.user_email == "alice@example.com"


def test_data_wins_over_user_object() -> None:
    event = Event(
        "user_login",
        {"user_name": "alice", "email": "a@example.com"},
        user=User(name="someone-else", email="other@example.com"),
    )
    assert to_notification(event).message == "User 'alice' logged in."
    # for routing, the user object's address is the user's own
    assert event.user_email == "other@example.com"


def test_host_may_override_title_message_and_severity_of_a_catalogue_event() -> None:
    event = Event(
        "backup_failure",
        {"job_name": "j"},
        title="Backup Late",
        message="Still running after 3h.",
        severity=Severity.WARNING,
    )
    notification = to_notification(event)
    assert (notification.title, notification.message, notification.severity) == (
        "Backup Late",
        "Still running after 3h.",
        Severity.WARNING,
    )


# --- the host's mistakes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "data", "text"),
    [
        ("backup_success", {}, "event 'backup_success' needs data key(s) job_name (got: none)"),
        (
            "backup_failure",
            {"error": "x"},
            "event 'backup_failure' needs data key(s) job_name (got: error)",
        ),
        (
            "system_error",
            {"component": "scheduler"},
            "event 'system_error' needs data key(s) error (got: component)",
        ),
        (
            "user_login",
            {"ip_address": "203.0.113.7"},
            "event 'user_login' needs data key(s) user_name (got: ip_address)",
        ),
        (
            "user_created",
            {"user_name": "", "email": "b@example.com"},
            "event 'user_created' needs data key(s) user_name (got: email, user_name)",
        ),
    ],
)
def test_missing_required_key_is_an_event_error(
    event_type: str, data: dict[str, object], text: str
) -> None:
    with pytest.raises(EventError) as info:
        to_notification(Event(event_type, data))
    assert str(info.value) == text


def test_unknown_event_type_needs_a_title() -> None:
    with pytest.raises(EventError) as info:
        to_notification(Event("disk_almost_full", {"free": "2 GiB"}))
    assert str(info.value) == (
        "event type 'disk_almost_full' is not in the catalogue; pass title (and message, "
        "fields, severity) with it, or use one of: backup_success, backup_failure, "
        "restore_complete, restore_failure, config_backup, system_error, user_login, "
        "user_created, test"
    )


def test_unknown_event_type_with_title_message_and_fields() -> None:
    event = Event(
        "disk_almost_full",
        {"ignored": "x"},
        title="Disk Almost Full",
        message="Only 2 GiB left on /var/backups.",
        fields={"Free": "2 GiB", "Volume": "/var/backups"},
        severity=Severity.WARNING,
    )
    notification = to_notification(event)
    assert notification.event_type == "disk_almost_full"
    assert notification.title == "Disk Almost Full"
    assert notification.message == "Only 2 GiB left on /var/backups."
    assert notification.severity is Severity.WARNING
    assert [(f.label, f.value) for f in notification.fields] == [
        ("Free", "2 GiB"),
        ("Volume", "/var/backups"),
    ]


def test_unknown_event_type_defaults_to_info_and_shows_its_data() -> None:
    event = Event("quota_check", {"used_bytes": 10, "job_name": "nightly"}, title="Quota")
    notification = to_notification(event)
    assert notification.severity is Severity.INFO
    assert notification.message == ""
    assert [(f.label, f.value) for f in notification.fields] == [
        ("Used Bytes", "10"),
        ("Job", "nightly"),
    ]
    assert notification.job_name == "nightly"


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(EventError) as info:
        Event("test", timestamp=dt.datetime(2024, 5, 1, 12, 0))
    assert str(info.value) == "timestamp must carry a time zone (e.g. datetime.now(UTC))"


def test_timestamp_defaults_to_now_in_utc() -> None:
    before = dt.datetime.now(dt.UTC)
    event = Event("test")
    assert before <= event.timestamp <= dt.datetime.now(dt.UTC)
    assert event.timestamp.utcoffset() == dt.timedelta(0)


def test_each_notification_gets_its_own_id() -> None:
    event = Event("test")
    assert to_notification(event).id != to_notification(event).id


def test_event_data_is_copied() -> None:
    data = {"job_name": "nightly-pg"}
    event = Event("backup_success", data)
    data["job_name"] = "changed"
    assert event.job_name == "nightly-pg"


# --- humanize -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (1048524, "1023.9 KiB"),
        (1048575, "1 MiB"),  # not "1024 KiB"
        (1048576, "1 MiB"),
        (1610612736, "1.5 GiB"),
        (5 * 1024**4, "5 TiB"),
        (1024**5, "1 PiB"),
        (3 * 1024**6, "3072 PiB"),
        (-2048, "-2 KiB"),
    ],
)
def test_size(value: int, text: str) -> None:
    assert humanize.size(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 ms"),
        (850, "850 ms"),
        (999.4, "999 ms"),
        (999.6, "1s"),  # not "1000 ms"
        (1000, "1s"),
        (1499, "1s"),
        (2500, "3s"),  # half up, like 3500 -> 4s
        (3500, "4s"),
        (59_400, "59s"),
        (59_500, "1m"),
        (60_000, "1m"),
        (150_000, "2m 30s"),
        (3_600_000, "1h"),
        (3_661_000, "1h 1m 1s"),
        (86_400_000, "1d"),
        (90_061_000, "1d 1h 1m 1s"),
    ],
)
def test_duration(value: float, text: str) -> None:
    assert humanize.duration(value) == text


def test_severity_may_be_given_by_name() -> None:
    event = Event("disk_almost_full", title="Disk", severity="warning")
    assert to_notification(event).severity is Severity.WARNING


def test_unknown_severity_is_the_hosts_error() -> None:
    with pytest.raises(EventError) as info:
        Event("disk_almost_full", title="Disk", severity="urgent")
    assert str(info.value) == (
        "severity must be one of success, failure, info, warning (got 'urgent')"
    )


# --- bytes that are not text ---------------------------------------------------------


def test_bytes_that_are_not_utf8_become_a_visible_marker() -> None:
    """``os.fsdecode`` and argv keep such bytes as lone surrogates: the notification holds
    U+FFFD in their place, so no channel or store meets a text it cannot encode."""
    name = b"nightly-\xe4".decode("utf-8", "surrogateescape")
    error = b"Empf\xe4nger unbekannt".decode("utf-8", "surrogateescape")
    n = to_notification(Event("backup_failure", {"job_name": name, "error": error}))
    assert n.job_name == "nightly-\ufffd"
    assert "Empf\ufffdnger unbekannt" in n.message
    assert ("Error", "Empf\ufffdnger unbekannt") in [(f.label, f.value) for f in n.fields]
    for text in (n.title, n.message, *(f.value for f in n.fields)):
        text.encode("utf-8")  # no UnicodeEncodeError anywhere


def test_a_custom_event_gets_the_same_treatment() -> None:
    odd = "\udcff"
    n = to_notification(
        Event("custom", title=f"t{odd}", message=f"m{odd}", fields={f"k{odd}": f"v{odd}"})
    )
    assert (n.title, n.message) == ("t\ufffd", "m\ufffd")
    assert [(f.label, f.value) for f in n.fields] == [("k\ufffd", "v\ufffd")]


def test_an_address_that_is_not_text_is_refused_naming_it() -> None:
    address = b"alice\xe4@example.com".decode("utf-8", "surrogateescape")
    with pytest.raises(EventError) as info:
        to_notification(Event("user_login", {"user_name": "alice"}, user=User(email=address)))
    assert str(info.value) == (
        "the user's email address 'alice\ufffd@example.com' holds bytes that are not UTF-8 "
        "text; pass the address as text"
    )


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-12))),
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    ],
)
def test_a_timestamp_no_zone_can_show_is_refused(when: dt.datetime) -> None:
    with pytest.raises(EventError) as info:
        Event("test", timestamp=when)
    assert str(info.value) == (
        f"timestamp {when.isoformat()} is out of range: it must be between year 1 and 9999 "
        "in every time zone (e.g. datetime.now(UTC))"
    )
