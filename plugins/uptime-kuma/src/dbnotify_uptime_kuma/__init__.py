"""Uptime Kuma push monitor channel."""
