"""Microsoft Teams channel (incoming webhook)."""
