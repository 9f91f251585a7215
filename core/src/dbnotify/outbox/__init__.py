"""Durable delivery: a SQLite outbox, retries that follow the rules, readable history."""

from dbnotify.outbox.policy import RetryPolicy, policy_for
from dbnotify.outbox.store import Outbox, OutboxError

__all__ = ["Outbox", "OutboxError", "RetryPolicy", "policy_for"]
