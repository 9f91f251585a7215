"""Events the host reports, and the catalogue that turns them into notifications.

An :class:`Event` is what the host says happened (type + data). A :class:`Notification`
is what every channel shows: severity, title, message, fields. Known event types get
these from the catalogue; unknown types bring their own.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from dbnotify import humanize
from dbnotify.errors import EventError
from dbnotify.ids import new_id
from dbnotify.text import as_optional_text, as_text


class Severity(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    INFO = "info"
    WARNING = "warning"


_EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


@attrs.frozen
class User:
    """The person an event is about (login, account creation)."""

    name: str | None = None
    email: str | None = None


def _data(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)
"""A day inside datetime's range: shown in any time zone, a timestamp must not leave it."""


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise EventError("timestamp must carry a time zone (e.g. datetime.now(UTC))")
    try:
        inside = _EARLIEST <= value <= _LATEST
    except OverflowError:
        inside = False
    if not inside:
        raise EventError(
            f"timestamp {value.isoformat()} is out of range: it must be between year 1 and "
            "9999 in every time zone (e.g. datetime.now(UTC))"
        )
    return value


def _severity(value: Severity | str | None) -> Severity | None:
    """Accept ``"warning"`` as well as ``Severity.WARNING``; refuse anything else here,
    where the host's mistake is still the host's (not a channel plugin's KeyError)."""
    if value is None or isinstance(value, Severity):
        return value
    try:
        return Severity(value)
    except ValueError:
        raise EventError(
            f"severity must be one of {', '.join(s.value for s in Severity)} (got {value!r})"
        ) from None


class Condition(enum.Enum):
    """When a backup job's events are sent."""

    ALWAYS = "always"
    SUCCESS_ONLY = "success_only"
    FAILURE_ONLY = "failure_only"


class NotifyUser(enum.Enum):
    """Whether user_login / user_created also go to the affected user."""

    NONE = "none"
    ALSO = "also"
    ONLY = "only"


def _names(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class JobRule:
    """A backup job's routing: ``[jobs.NAME]`` in the file, or passed by the host.

    A rule passed with the event wins over the file's.
    """

    channels: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=_names,
        metadata={"description": "channels for this job's backup events (default: the event's)"},
    )
    condition: Condition = attrs.field(
        default=Condition.ALWAYS,
        converter=Condition,
        metadata={"description": "always | success_only | failure_only"},
    )


@attrs.frozen
class Event:
    """Something that happened in the host.

    For event types outside the catalogue, pass ``title``, ``message``, ``fields`` and
    ``severity`` yourself; for catalogue types they are derived from ``data``.
    """

    type: str = attrs.field()
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_data)
    timestamp: dt.datetime = attrs.field(factory=_utcnow, converter=_aware)
    user: User | None = None
    job: JobRule | None = None
    title: str | None = None
    message: str | None = None
    fields: Mapping[str, str] | None = None
    severity: Severity | None = attrs.field(default=None, converter=_severity)

    @type.validator
    def _check_type(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if not _EVENT_TYPE.fullmatch(value):
            raise EventError(
                f"event type {value!r} must be letters, digits and _ . : - (e.g. 'backup_failure')"
            )

    @property
    def job_name(self) -> str | None:
        name = self.data.get("job_name")
        return str(name) if name is not None else None

    @property
    def user_email(self) -> str | None:
        """The affected user's address: ``user.email``, else the ``email`` data key."""
        if self.user is not None and self.user.email:
            return self.user.email
        email = self.data.get("email")
        return str(email) if email else None


@attrs.frozen
class Field:
    label: str = attrs.field(converter=as_text)
    value: str = attrs.field(converter=as_text)


@attrs.frozen
class Notification:
    """What every channel renders. Built once per event, shared by all its targets.

    Every text in it can be encoded: the one boundary where bytes that were not UTF-8
    become U+FFFD, so that no channel, template or store meets a lone surrogate.
    """

    id: str
    event_type: str
    severity: Severity
    title: str = attrs.field(converter=as_text)
    message: str = attrs.field(converter=as_text)
    fields: tuple[Field, ...]
    timestamp: dt.datetime
    job_name: str | None = attrs.field(default=None, converter=as_optional_text)


# --- the catalogue -------------------------------------------------------------------

Formatter = Callable[[Any], str]


def _text(value: Any) -> str:
    return str(value)


def _yes_no(value: Any) -> str:
    if isinstance(value, str):
        return "Yes" if value.strip().lower() in {"1", "true", "yes", "on"} else "No"
    return "Yes" if value else "No"


def _number(convert: Formatter) -> Formatter:
    def fmt(value: Any) -> str:
        try:
            return convert(float(value))
        except (TypeError, ValueError):
            return str(value)

    return fmt


FIELD_FORMATS: dict[str, tuple[str, Formatter]] = {
    "job_name": ("Job", _text),
    "source_name": ("Source", _text),
    "target_database": ("Target Database", _text),
    "duration_ms": ("Duration", _number(humanize.duration)),
    "size_bytes": ("Size", _number(humanize.size)),
    "file_name": ("File", _text),
    "encrypted": ("Encrypted", _yes_no),
    "component": ("Component", _text),
    "error": ("Error", _text),
    "details": ("Details", _text),
    "user_name": ("User", _text),
    "email": ("Email", _text),
    "ip_address": ("IP Address", _text),
    "user_agent": ("User Agent", _text),
    "created_by": ("Created By", _text),
}


def _label(key: str) -> tuple[str, Formatter]:
    return FIELD_FORMATS.get(key, (key.replace("_", " ").title(), _text))


def _with_error(sentence: str, data: Mapping[str, Any]) -> str:
    return f"{sentence} Error: {data['error']}" if data.get("error") else sentence


def _restore_what(data: Mapping[str, Any]) -> str:
    parts = ["Restore"]
    if data.get("source_name"):
        parts.append(f"of '{data['source_name']}'")
    if data.get("target_database"):
        parts.append(f"to '{data['target_database']}'")
    return " ".join(parts)


@attrs.frozen
class EventSpec:
    """How one catalogue event reads. ``required`` keys must be in the data."""

    id: str
    severity: Severity
    title: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    message: Callable[[Mapping[str, Any]], str]
    enabled_by_default: bool
    per_job: bool = False
    user_event: bool = False
    user_copy: UserCopy | None = None
    """How the affected user's own copy reads (user events only)."""


@attrs.frozen
class UserCopy:
    """The wording of a message addressed to the user it is about, not to the admins."""

    title: str
    message: Callable[[Mapping[str, Any]], str]
    fields: tuple[str, ...]


CATALOGUE: dict[str, EventSpec] = {
    spec.id: spec
    for spec in (
        EventSpec(
            "backup_success",
            Severity.SUCCESS,
            "Backup Successful",
            ("job_name",),
            ("source_name", "duration_ms", "size_bytes"),
            lambda d: f"Backup job '{d['job_name']}' completed successfully.",
            enabled_by_default=True,
            per_job=True,
        ),
        EventSpec(
            "backup_failure",
            Severity.FAILURE,
            "Backup Failed",
            ("job_name",),
            ("source_name", "error"),
            lambda d: _with_error(f"Backup job '{d['job_name']}' failed.", d),
            enabled_by_default=True,
            per_job=True,
        ),
        EventSpec(
            "restore_complete",
            Severity.SUCCESS,
            "Restore Completed",
            (),
            ("source_name", "target_database", "duration_ms"),
            lambda d: f"{_restore_what(d)} completed successfully.",
            enabled_by_default=True,
        ),
        EventSpec(
            "restore_failure",
            Severity.FAILURE,
            "Restore Failed",
            (),
            ("source_name", "target_database", "error"),
            lambda d: _with_error(f"{_restore_what(d)} failed.", d),
            enabled_by_default=True,
        ),
        EventSpec(
            "config_backup",
            Severity.INFO,
            "Configuration Backup Created",
            (),
            ("file_name", "size_bytes", "encrypted"),
            lambda d: (
                "A configuration backup was created."
                if not d.get("file_name")
                else f"Configuration backup '{d['file_name']}' was created."
            ),
            enabled_by_default=False,
        ),
        EventSpec(
            "system_error",
            Severity.FAILURE,
            "System Error",
            ("component", "error"),
            ("details",),
            lambda d: f"An error occurred in {d['component']}: {d['error']}",
            enabled_by_default=True,
        ),
        EventSpec(
            "user_login",
            Severity.INFO,
            "User Login",
            ("user_name",),
            ("email", "ip_address", "user_agent"),
            lambda d: f"User '{d['user_name']}' logged in.",
            enabled_by_default=False,
            user_event=True,
            user_copy=UserCopy(
                "New Sign-in to Your Account",
                lambda d: (
                    f"Someone signed in to your account '{d['user_name']}'. If this "
                    "was not you, change your password and tell your administrator."
                ),
                ("ip_address", "user_agent"),
            ),
        ),
        EventSpec(
            "user_created",
            Severity.SUCCESS,
            "New User Created",
            ("user_name",),
            ("email", "created_by"),
            lambda d: (
                f"A new user account '{d['user_name']}' was created"
                + (f" by '{d['created_by']}'." if d.get("created_by") else ".")
            ),
            enabled_by_default=False,
            user_event=True,
            user_copy=UserCopy(
                "Your Account Was Created",
                lambda d: (
                    f"An account '{d['user_name']}' was created for you"
                    + (f" by '{d['created_by']}'." if d.get("created_by") else ".")
                ),
                ("user_name", "created_by"),
            ),
        ),
        EventSpec(
            "test",
            Severity.INFO,
            "Test Notification",
            (),
            (),
            lambda d: "This is a test notification. If you can read it, the channel works.",
            enabled_by_default=True,
        ),
    )
}


def _fields(
    data: Mapping[str, Any], order: tuple[str, ...], *, extra: bool = True
) -> tuple[Field, ...]:
    """Known keys first in catalogue order, then (if ``extra``) any others the host sent."""
    keys = [k for k in order if data.get(k) not in (None, "")]
    if extra:
        keys += [k for k in data if k not in order and data[k] not in (None, "")]
    return tuple(Field(_label(k)[0], _label(k)[1](data[k])) for k in keys)


def to_notification(event: Event, *, notification_id: str | None = None) -> Notification:
    """Turn an event into what channels render. Raises :class:`EventError` for bad input.

    ``notification_id``: the id to give it instead of a new random one (a caller that
    derives it from an idempotency key, so that the outbox holds the key durably)."""
    address = event.user_email
    if address is not None and as_text(address) != address:
        raise EventError(
            f"the user's email address {as_text(address)!r} holds bytes that are not UTF-8 "
            "text; pass the address as text"
        )
    spec = CATALOGUE.get(event.type)
    nid = notification_id or new_id()
    if spec is None:
        if not event.title:
            raise EventError(
                f"event type {event.type!r} is not in the catalogue; pass title (and "
                f"message, fields, severity) with it, or use one of: {', '.join(CATALOGUE)}"
            )
        fields = tuple(Field(str(k), str(v)) for k, v in (event.fields or {}).items())
        return Notification(
            id=nid,
            event_type=event.type,
            severity=event.severity or Severity.INFO,
            title=event.title,
            message=event.message or "",
            fields=fields or _fields(event.data, ()),
            timestamp=event.timestamp,
            job_name=event.job_name,
        )
    data = _data_of(event, spec)
    missing = [k for k in spec.required if data.get(k) in (None, "")]
    if missing:
        raise EventError(
            f"event {event.type!r} needs data key(s) {', '.join(missing)}"
            f" (got: {', '.join(sorted(data)) or 'none'})"
        )
    return Notification(
        id=nid,
        event_type=event.type,
        severity=event.severity or spec.severity,
        title=event.title or spec.title,
        message=event.message or spec.message(data),
        fields=_fields(data, spec.required + spec.optional),
        timestamp=event.timestamp,
        job_name=event.job_name,
    )


def to_user_notification(event: Event, notification: Notification) -> Notification:
    """The affected user's own copy: same id and time, worded for that user.

    DBackup sent users the admins' message; a user is told what happened to them, with
    only the fields that concern them. Events without such wording keep the admins'.
    """
    spec = CATALOGUE.get(event.type)
    if spec is None or spec.user_copy is None:
        return notification
    data = _data_of(event, spec)
    return attrs.evolve(
        notification,
        title=spec.user_copy.title,
        message=spec.user_copy.message(data),
        fields=_fields(data, spec.user_copy.fields, extra=False),
    )


def _data_of(event: Event, spec: EventSpec) -> dict[str, Any]:
    data = dict(event.data)
    if event.user is not None:
        if event.user.name and "user_name" in spec.required + spec.optional:
            data.setdefault("user_name", event.user.name)
        if event.user.email and "email" in spec.required + spec.optional:
            data.setdefault("email", event.user.email)
    return data
