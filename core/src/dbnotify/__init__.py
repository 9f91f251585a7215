"""dbnotify: DBackup's notification framework.

Importing the package has no side effects and is cheap: each name below is imported from
its module on first use (PEP 562), and plugins load only when a channel type is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME: dict[str, str] = {
    "Config": "dbnotify.config",
    "ConfigError": "dbnotify.config",
    "ConfigIssue": "dbnotify.config",
    "load_config": "dbnotify.config",
    "Notifier": "dbnotify.dispatcher",
    "Event": "dbnotify.events",
    "EventError": "dbnotify.events",
    "Notification": "dbnotify.events",
    "Severity": "dbnotify.events",
    "User": "dbnotify.events",
    "ChannelResult": "dbnotify.results",
    "DispatchResult": "dbnotify.results",
    "FailureKind": "dbnotify.results",
    "RecipientResult": "dbnotify.results",
    "Status": "dbnotify.results",
    "TestReport": "dbnotify.results",
    "TestStage": "dbnotify.results",
    "Secret": "dbnotify.secrets",
}
"""Where each name of ``__all__`` lives: imported from there on first access."""


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'dbnotify' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
