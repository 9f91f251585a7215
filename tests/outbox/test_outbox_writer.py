"""``[outbox] writer = "process"``: the SQLite outbox's work in a child process.

The store's semantics are the contract suite's (``core/tests/test_core_outbox_store.py``
runs every store test on it too); here, what only a process has: it delivers end to end,
it is reaped, a killed child fails only what it held (with the reason) and the next
operation starts another, and Ctrl-C reaches the host, not the child; and that
``dbnotify worker`` runs one when the file names no writer (``dbnotify serve``'s in
tests/serve, where its extra is installed).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from dbnotify import Event, Notifier
from dbnotify.errors import OutboxError, Unreachable
from dbnotify.events import to_notification
from dbnotify.outbox.model import Attempt, Claimed, DeliveryState, Enqueue, Hold, Problem
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.outbox.sqlite import SQLiteStore
from dbnotify.outbox.sqlite.plain import CODECS, UNREAD
from dbnotify.outbox.sqlite.writer import MODULE, WriterStore, _frame, _portable
from dbnotify.results import ChannelResult, Delivery, FailureKind, RecipientResult, Target

FAILURE = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
SEND = ("send", "backup_failure", "--data", "job_name=j", "--data", "error=e", "--no-wait")
POLICY = RetryPolicy(attempts=3, first_delay=10, max_delay=60, max_age=600)


def writers(parent: int | None = None) -> list[int]:
    """The writer processes ``parent`` (by default this test process) started and has not
    reaped."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if int(stat[1]) == parent and MODULE.encode() in cmdline:
            found.append(int(entry.name))
    return found


def item(number: int) -> Enqueue:
    notification = to_notification(Event("backup_failure", {"job_name": f"job-{number}"}))
    return Enqueue(notification, None, [Delivery("ops-mail", Target.CHANNEL)], POLICY)


async def test_a_host_with_a_writer_process_delivers_and_reaps_it(
    files: Any, smtp_on: Any, until: Any
) -> None:
    server = await smtp_on()
    notifier = Notifier.from_config(files.config(server.port, writer="process"))
    assert writers() == []  # nothing runs before the first operation
    notifier.start()
    try:
        results = await asyncio.gather(
            *(notifier.notify(Event("backup_failure", {"job_name": f"job-{n}"})) for n in range(30))
        )
        assert {r.recipients[0].status.value for r in results} == {"queued"}
        (child,) = writers()
        await until(lambda: files.counts(pending=0, delivered=30))
        assert len(set(server.message_ids())) == 30
        history = await notifier.history(limit=100)
        assert {row.status for row in history} == {"delivered"}
    finally:
        await notifier.aclose()
        assert notifier.outbox is not None
        await notifier.outbox.aclose()
    assert writers() == []  # closed and reaped
    assert child not in writers()


async def test_dbnotify_send_and_worker_use_it(
    files: Any, smtp_on: Any, dbnotify: Any, start_worker: Any, until: Any
) -> None:
    server = await smtp_on()
    config = files.config(server.port, writer="process")
    sent = await dbnotify(*SEND, "-c", str(config))
    assert sent.code == 0, sent.err
    assert "queued as delivery #1" in sent.out
    worker = await start_worker(config)
    await until(lambda: len(server.messages) == 1, within=15)
    await until(lambda: files.counts(pending=0, delivered=1))
    assert await worker.stop() == 0
    assert "worker stopped after 1 attempt\n" in worker.output


@pytest.mark.parametrize(("writer", "children"), [(None, 1), ("thread", 0)])
async def test_dbnotify_worker_runs_one_unless_the_file_names_the_thread(
    files: Any,
    smtp_on: Any,
    dbnotify: Any,
    start_worker: Any,
    until: Any,
    writer: str | None,
    children: int,
) -> None:
    server = await smtp_on()
    config = files.config(server.port, writer=writer)
    sent = await dbnotify(*SEND, "-c", str(config))
    assert sent.code == 0, sent.err
    worker = await start_worker(config)
    await until(lambda: len(server.messages) == 1, within=15)
    found = writers(worker.pid)
    assert len(found) == children
    assert await worker.stop() == 0
    assert "worker stopped after 1 attempt\n" in worker.output
    await until(lambda: files.counts(pending=0, delivered=1))
    for child in found:  # ended and reaped with the worker, not left behind
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


async def test_a_killed_writer_fails_what_it_held_and_the_next_operation_starts_another(
    tmp_path: Path, until: Any
) -> None:
    path = tmp_path / "outbox.sqlite"
    store = WriterStore(path, busy_timeout=10)
    try:
        await store.enqueue_many([item(1)])
        (child,) = writers()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the next write waits for this lock
        waiting = asyncio.create_task(store.enqueue_many([item(2)]))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        os.kill(child, signal.SIGKILL)
        with pytest.raises(Unreachable) as raised:  # an OutboxError the worker retries
            await asyncio.wait_for(waiting, 10)
        assert str(raised.value) == (
            f"the outbox {path}: its writer process ended (killed by SIGKILL); the next "
            "operation starts another. What was committed stands; if this keeps happening, "
            'set [outbox] writer = "thread"'
        )
        other.execute("ROLLBACK")
        other.close()
        counts = await store.counts()  # a new child, the file as it was committed
        assert (counts["pending"], writers() != [child]) == (1, True)
    finally:
        await store.aclose()
    assert writers() == []


@pytest.mark.parametrize(
    ("interpreter", "said"),
    [
        # an embedded host's sys.executable: a program that is not a Python
        ("/usr/bin/true", "ended (exit status 0)"),
        ("/nonexistent/python", "could not be started: [Errno 2] No such file or directory: "),
    ],
)
async def test_a_host_without_an_interpreter_to_start_is_told_to_keep_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interpreter: str, said: str
) -> None:
    """uWSGI or a frozen application: ``sys.executable`` cannot run the writer."""
    monkeypatch.setattr("sys.executable", interpreter)
    path = tmp_path / "outbox.sqlite"
    store = WriterStore(path, busy_timeout=10)
    try:
        with pytest.raises(OutboxError) as raised:
            await asyncio.wait_for(store.enqueue_many([item(1)]), 10)
    finally:
        await store.aclose()
    text = str(raised.value)
    assert text.startswith(f"the outbox {path}: its writer process {said}"), text
    assert text.endswith(
        "the next operation starts another. What was committed stands; if this keeps "
        'happening, set [outbox] writer = "thread"'
    ), text
    assert writers() == []


async def test_a_record_the_writer_died_on_is_tried_again_with_the_next_one(
    files: Any, scripted: Any, until: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await scripted(final_delay=0.5)  # the message is stored, its 250 comes late
    config = files.config(server.port, writer="process", busy_timeout=10)
    notifier = Notifier.from_config(config)
    notifier.start()
    try:
        await notifier.notify(FAILURE)
        await until(lambda: len(server.data) == 1)
        (child,) = writers()
        other = sqlite3.connect(files.outbox, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the attempt's record will wait for this lock
        await asyncio.sleep(2.0)  # the reply came: the record waits in the child
        os.kill(child, signal.SIGKILL)
        await until(lambda: "its outcome could not be recorded" in caplog.text)
        other.execute("ROLLBACK")
        other.close()
        await until(lambda: files.counts(pending=0, delivered=1))
        assert len(server.data) == 1  # recorded, not sent again
        assert (
            "its writer process ended (killed by SIGKILL); the next operation starts another"
            in caplog.text
        )
    finally:
        await notifier.aclose()
        assert notifier.outbox is not None
        await notifier.outbox.aclose()


async def test_a_writer_that_died_while_idle_is_replaced_without_an_error(
    tmp_path: Path, until: Any
) -> None:
    store = WriterStore(tmp_path / "outbox.sqlite")
    try:
        await store.enqueue_many([item(1)])
        (child,) = writers()
        os.kill(child, signal.SIGKILL)
        await until(lambda: child not in writers())
        await asyncio.sleep(0.1)  # the loop hears of its exit
        assert (await store.counts())["pending"] == 1
        (again,) = writers()
        assert again != child
    finally:
        await store.aclose()


async def test_ctrl_c_reaches_the_host_not_its_writer(tmp_path: Path) -> None:
    store = WriterStore(tmp_path / "outbox.sqlite")
    try:
        await store.enqueue_many([item(1)])
        (child,) = writers()
        # a session of its own: the terminal's SIGINT goes to the host's group only
        assert os.getsid(child) == child != os.getsid(0)
        os.kill(child, signal.SIGINT)  # and it would not end on one anyway
        await asyncio.sleep(0.2)
        assert (await store.counts())["pending"] == 1
        assert writers() == [child]
    finally:
        await store.aclose()


class Odd(Exception):
    def __init__(self, one: str, two: str) -> None:
        super().__init__(f"{one} and {two}")


def test_an_exception_the_parent_cannot_unpickle_arrives_as_its_text() -> None:
    kept = _portable(ValueError("bad value"))
    assert (type(kept), str(kept)) == (ValueError, "bad value")
    odd = _portable(Odd("this", "that"))
    assert (type(odd), str(odd)) == (RuntimeError, "Odd: this and that")


def test_a_loop_that_ends_without_closing_the_store_ends_its_writer_too(
    tmp_path: Path,
) -> None:
    store = WriterStore(tmp_path / "outbox.sqlite")

    async def use_and_forget() -> list[int]:
        await store.enqueue_many([item(1)])
        return writers()

    done: list[list[int]] = []
    thread = threading.Thread(target=lambda: done.append(asyncio.run(use_and_forget())))
    thread.start()
    thread.join(15)
    assert done, "asyncio.run() did not return: the loop waited for its writer"
    ((child,),) = done
    deadline = time.monotonic() + 10
    while child in writers():  # its stdin closed: it ends (and is reaped)
        assert time.monotonic() < deadline, "the writer outlived its loop"
        time.sleep(0.05)


@attrs.frozen
class Private:
    _hidden: int
    shown: str = attrs.field(kw_only=True)


def test_what_crosses_the_pipe_comes_back_equal() -> None:
    notification = to_notification(FAILURE)
    user = to_notification(
        Event("user_login", {"user_name": "alice", "user_email": "alice@example.com"})
    )
    claimed = Claimed(
        7,
        notification,
        Delivery("ops-mail", Target.USER, ("alice@example.com",)),
        ("alice@example.com",),
        1,
        POLICY,
        1e10,
        "group-1",
        3,
    )
    results = (
        RecipientResult.delivered("alice@example.com", reply="250 ok"),
        RecipientResult.failed(
            "bob@example.com", FailureKind.TRANSIENT, "busy", hint="wait", retry_after=30.0
        ),
    )
    attempt = Attempt(claimed, results, "fingerprint")
    hold = Hold("group-1", 30.0, 300.0, Problem("key", "nightly-pg", "backup_failure", 60.0))
    skipped = ChannelResult(
        "chat", "slack", Target.USER, (RecipientResult.skipped("carol", "no address"),)
    )
    enqueue = Enqueue(
        notification,
        user,
        (claimed.delivery, Delivery("ops-mail", Target.CHANNEL)),
        POLICY,
        (skipped,),
        (hold, None),
    )

    def crossed(value: Any) -> Any:
        frame = _frame(value)
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        return pickle.loads(frame[4:])

    # the three requests of every message go as plain values, and come back equal
    enqueuing = CODECS["_enqueue_many"]
    assert enqueuing.receive(crossed(enqueuing.send(([enqueue], 5.0)))) == ((enqueue,), 5.0)
    claiming = CODECS["_claim"]
    assert claiming.result(crossed(claiming.answer([claimed]))) == [claimed]
    recording = CODECS["_record_many"]
    ((sent,), now, delay) = recording.receive(crossed(recording.send(([attempt], 5.0, None))))
    assert (now, delay) == (5.0, None)
    # a record's notification stays in the host: the writer never reads it
    assert sent == attrs.evolve(attempt, claimed=attrs.evolve(claimed, notification=UNREAD))
    states = [DeliveryState.DONE, DeliveryState.TAKEN_OVER, DeliveryState.PENDING]
    assert recording.result(crossed(recording.answer(states))) == states
    # any other request crosses as it is (attrs' own pickling, private fields included)
    for value in (Private(1, shown="x"), [claimed, None, 1.5]):
        assert crossed(value) == value


async def test_an_outbox_error_in_the_child_reads_as_it_does_with_the_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "no-such-folder" / "outbox.sqlite"
    said = []
    for store in (SQLiteStore(path), WriterStore(path)):
        try:
            with pytest.raises(OutboxError) as raised:
                await store.counts()
            said.append((type(raised.value), str(raised.value)))
        finally:
            await store.aclose()
    assert (
        said[0]
        == said[1]
        == (
            OutboxError,
            f"cannot open the outbox {path}; check that its folder exists and is writable",
        )
    )
    assert writers() == []
