"""Slack channel (incoming webhook)."""
