"""ntfy channel."""
