"""dbnotify: DBackup's notification framework.

Importing the package has no side effects and is cheap: each name below is imported from
its module on first use (PEP 562), and plugins load only when a channel type is needed.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time: every command pays for this module
    from typing import Any

    from dbnotify.config.load import load_config
    from dbnotify.config.model import Config
    from dbnotify.errors import ConfigError, ConfigIssue, DbnotifyError, EventError, OutboxError
    from dbnotify.events import Event, Notification, Severity, User
    from dbnotify.notifier import Notifier
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
    "DbnotifyError",
    "DispatchResult",
    "Event",
    "EventError",
    "FailureKind",
    "Notification",
    "Notifier",
    "OutboxError",
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
    "Config": "dbnotify.config.model",
    "ConfigError": "dbnotify.errors",
    "ConfigIssue": "dbnotify.errors",
    "DbnotifyError": "dbnotify.errors",
    "EventError": "dbnotify.errors",
    "OutboxError": "dbnotify.errors",
    "load_config": "dbnotify.config.load",
    "Notifier": "dbnotify.notifier",
    "Event": "dbnotify.events",
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
