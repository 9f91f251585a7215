"""Discord channel (webhook)."""
