"""Bridge to Apprise: every service it knows, as one dbnotify channel."""
