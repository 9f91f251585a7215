"""Email (SMTP) channel for dbnotify."""
