"""Notification ids: random, unique across threads and across a fork."""

from __future__ import annotations

import os
import re
import threading

from dbnotify import Event
from dbnotify.events import to_notification
from dbnotify.ids import BATCH, new_id


def test_an_id_is_32_hex_digits_and_ids_do_not_repeat_across_batches() -> None:
    ids = [new_id() for _ in range(4 * BATCH + 3)]

    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_notification_gets_a_new_id_unless_it_is_given_one() -> None:
    first, second = (
        to_notification(Event("backup_success", {"job_name": "nightly"})) for _ in range(2)
    )

    assert first.id != second.id
    assert (
        to_notification(Event("backup_success", {"job_name": "nightly"}), notification_id="abc").id
        == "abc"
    )


def test_threads_drawing_at_once_never_get_the_same_id() -> None:
    drawn: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(len(drawn))

    def draw(into: list[str]) -> None:
        start.wait()
        into.extend(new_id() for _ in range(3 * BATCH))

    threads = [threading.Thread(target=draw, args=(d,)) for d in drawn]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    every = [i for d in drawn for i in d]
    assert len(set(every)) == len(every) == 8 * 3 * BATCH


def test_a_forked_child_draws_ids_of_its_own() -> None:
    new_id()  # the parent's batch is under way: a child must not repeat what is left of it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_id() for _ in range(BATCH)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [new_id() for _ in range(BATCH)]

    assert len(child) == BATCH
    assert not set(child) & set(parent)
