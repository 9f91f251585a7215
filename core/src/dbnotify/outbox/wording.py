"""The sentences an operator reads when an outbox cannot do its job.

Each names the outbox (``where``: a file's path, or a server without its password), the
cause, and what to do. Every backend maps its own failures onto these, so that a locked
file and a locked table read alike and tests can pin them word for word.
"""

from __future__ import annotations


def locked(where: str) -> str:
    return (
        f"the outbox {where} is locked by another process (waited for it); check for a "
        "process holding it open in a long transaction"
    )


def full(where: str) -> str:
    return f"the outbox {where} cannot grow: the disk (or its quota) is full; free space"


def not_writable(where: str) -> str:
    return f"the outbox {where} is not writable by this process; check its permissions"


def cannot_open(where: str) -> str:
    return f"cannot open the outbox {where}; check that its folder exists and is writable"


def damaged(where: str) -> str:
    return f"the outbox {where} is damaged or not an outbox; move it aside"


def too_new(where: str, found: int, known: int, key: str = "path") -> str:
    other = "another file" if key == "path" else "another database or schema"
    return (
        f"the outbox {where} has schema version {found}, newer than this dbnotify knows "
        f"({known}); upgrade dbnotify, or point [outbox] {key} at {other}"
    )


def failed(where: str, cause: object) -> str:
    return f"the outbox {where} failed: {cause}"


def writer_failed(where: str, what: str) -> str:
    return (
        f"the outbox {where}: its writer process {what}; the next operation starts another. "
        'What was committed stands; if this keeps happening, set [outbox] writer = "thread"'
    )
