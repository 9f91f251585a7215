"""Gotify channel."""
