"""dbnotify: DBackup's notification framework.

Importing the package has no side effects: plugins load on first use.
"""

from dbnotify.config import Config, ConfigError, ConfigIssue, load_config
from dbnotify.dispatcher import Notifier
from dbnotify.events import Event, EventError, Notification, Severity, User
from dbnotify.results import (
    ChannelResult,
    DispatchResult,
    FailureKind,
    RecipientResult,
    Status,
    TestReport,
    TestStage,
)
from dbnotify.secrets import Secret

__all__ = [
    "ChannelResult",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DispatchResult",
    "Event",
    "EventError",
    "FailureKind",
    "Notification",
    "Notifier",
    "RecipientResult",
    "Secret",
    "Severity",
    "Status",
    "TestReport",
    "TestStage",
    "User",
    "load_config",
]
