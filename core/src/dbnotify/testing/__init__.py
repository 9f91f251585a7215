"""Helpers for testing dbnotify and its plugins (``pip install 'dbnotify[testing]'``)."""
