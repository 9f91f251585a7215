"""Durable delivery: a SQLite outbox, retries that follow the rules, readable history."""

from dbnotify.outbox.policy import RetryPolicy, policy_for
from dbnotify.outbox.store import Outbox

__all__ = ["Outbox", "RetryPolicy", "policy_for"]
