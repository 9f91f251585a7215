"""Durable delivery: an outbox store, retries that follow the rules, readable history."""

from dbnotify.errors import OutboxError
from dbnotify.outbox.policy import RetryPolicy, policy_for
from dbnotify.outbox.store import OutboxStore, open_store

__all__ = ["OutboxError", "OutboxStore", "RetryPolicy", "open_store", "policy_for"]
