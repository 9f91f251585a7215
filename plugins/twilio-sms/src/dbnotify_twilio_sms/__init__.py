"""Twilio SMS channel."""
