"""Telegram channel (bot API)."""
