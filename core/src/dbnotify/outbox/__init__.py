"""Durable delivery: an outbox store, retries that follow the rules, readable history.

The package imports nothing itself, so that the CLI can read the worker's defaults
(:mod:`dbnotify.outbox.defaults`) without loading the store or the delivery path. The
interface is in :mod:`dbnotify.outbox.store`; the errors in :mod:`dbnotify.errors`.
"""
