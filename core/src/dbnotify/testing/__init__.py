"""Helpers for testing dbnotify and its plugins (``pip install 'dbnotify[testing]'``).

- :mod:`dbnotify.testing.smtpd`: ``LocalSMTPServer``, a real SMTP server on 127.0.0.1.
- :mod:`dbnotify.testing.scripted`: ``ScriptedSMTPServer``, a raw SMTP server on
  127.0.0.1 that misbehaves on cue (the faults aiosmtpd cannot produce) until healed.
- :mod:`dbnotify.testing.postgres`: ``start()``, a throwaway PostgreSQL cluster on
  127.0.0.1 (needs Debian's ``postgresql`` and the ``postgresql`` extra).
- The plugin contract suite (see docs/plugin-tutorial.md):
  :mod:`dbnotify.testing.generic`, checks that need no code from the plugin's author
  (``pytest --pyargs dbnotify.testing.generic --channel-type TYPE``);
  :mod:`dbnotify.testing.contract`, ``ChannelContract``, the behavioural checks a
  plugin's tests subclass; :mod:`dbnotify.testing.pytest_plugin`, the ``--channel-type``
  option (entry point ``pytest11``).

Importing this package imports none of them.
"""
