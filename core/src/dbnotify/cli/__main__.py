"""``python -m dbnotify.cli``: the command without its script (the contract suite uses it)."""

from dbnotify.cli.script import run

run()
