"""Healthchecks heartbeat channel."""
