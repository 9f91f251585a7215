"""When the outbox cannot take a notification, the host hears of it at notify() time.

Locked by another process, its disk full, its file unwritable: ``notify()`` raises
:class:`OutboxError` with a sentence that names the cause (and ``dbnotify send`` exits 1
with it), and nothing is half-queued. Never a silent drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbnotify import Event, Notifier
from dbnotify.errors import OutboxError
from dbnotify.outbox.sqlite import SQLiteStore

FAILURE = Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
SEND = ("send", "backup_failure", "--data", "job_name=nightly-pg", "--data", "error=x")

HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    db.execute("ROLLBACK")
    """
)


async def test_locked_by_another_process(files: Any, free_port: int, dbnotify: Any) -> None:
    config = files.config(free_port, busy_timeout=0.5)
    notifier = Notifier.from_config(config)
    await notifier.notify(FAILURE)  # the file exists, one notification in it
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_LOCK,
        str(files.outbox),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"locked\n"
        started = time.monotonic()
        with pytest.raises(OutboxError) as info:
            await notifier.notify(FAILURE)
        waited = time.monotonic() - started
        expected = (
            f"the outbox {files.outbox} is locked by another process (waited for it); "
            "check for a process holding it open in a long transaction"
        )
        assert str(info.value) == expected
        assert 0.4 < waited < 3  # busy_timeout = 0.5, not for ever
        run = await dbnotify(*SEND, "--no-wait", "-c", str(config))
        assert run.code == 1
        assert f"error: not sent: {expected}" in run.err
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        await asyncio.wait_for(holder.wait(), 10)
    # the lock gone, the same notifier queues again; the failed ones were never queued
    await notifier.notify(FAILURE)
    assert (await files.store().counts())["pending"] == 2
    print(f"\nlocked: OutboxError after {waited:.2f}s (busy_timeout 0.5s)")


def sh(*command: str | Path) -> int:
    """Run a command (mount, umount); its exit code."""
    return subprocess.run([str(c) for c in command], capture_output=True, check=False).returncode


@contextlib.contextmanager
def tiny_filesystem(folder: Path) -> Iterator[bool]:
    """A 256 KiB tmpfs at ``folder``; yields False when this machine cannot mount one."""
    folder.mkdir()
    mounted = sh("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", folder) == 0
    try:
        yield mounted
    finally:
        if mounted:
            sh("umount", "-l", folder)


def fill(folder: Path) -> Path:
    """Write a file until the file system has no space left."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


async def test_disk_full(files: Any, free_port: int, tmp_path: Path, dbnotify: Any) -> None:
    with tiny_filesystem(tmp_path / "small") as mounted:
        files.outbox = tmp_path / "small" / "outbox.sqlite"
        config = files.config(free_port)
        notifier = Notifier.from_config(config)
        await notifier.notify(FAILURE)
        store = files.store()
        if mounted:
            how = "a 256 KiB tmpfs, filled up"
            filler = fill(files.outbox.parent)
        else:  # no mount here: SQLite's own page limit on the outbox's connection
            how = "PRAGMA max_page_count on the outbox's connection (tmpfs not mountable)"
            assert isinstance(notifier.outbox, SQLiteStore)
            db = notifier.outbox.database.connect()
            db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        print(f"\ndisk full: simulated with {how}")
        big = Event("backup_failure", {"job_name": "nightly-pg", "error": "x" * 50_000})
        with pytest.raises(OutboxError) as info:
            await notifier.notify(big)
        expected = (
            f"the outbox {files.outbox} cannot grow: the disk (or its quota) is full; free space"
        )
        assert str(info.value) == expected
        if mounted:
            big_data = f"error={'x' * 50_000}"
            run = await dbnotify(*SEND, "--data", big_data, "--no-wait", "-c", str(config))
            assert run.code == 1
            assert f"error: not sent: {expected}" in run.err
            filler.unlink()
        assert (await store.counts())["pending"] == 1  # only the first, nothing half-written
        await notifier.notify(big)  # space again: it goes
        assert (await store.counts())["pending"] == 2
        await store.aclose()
        assert notifier.outbox is not None
        await notifier.outbox.aclose()


AS_NOBODY = textwrap.dedent(
    """
    import asyncio, os, sys
    from dbnotify import Event, Notifier
    from dbnotify.errors import OutboxError

    async def main():
        event = Event("backup_failure", {"job_name": "nightly-pg", "error": "x"})
        # warm up as root, so every module is imported before the privileges go
        warm = Notifier.from_config(sys.argv[1])
        await warm.notify(event)
        target = Notifier.from_config(sys.argv[2])
        os.setgid(65534)
        os.setuid(65534)  # nobody
        try:
            await target.notify(event)
        except OutboxError as exc:
            print(f"OutboxError: {exc}")
            sys.exit(1)
        print("queued")

    asyncio.run(main())
    """
)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder that user nobody may enter (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="dbnotify-outbox-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_unwritable_outbox_file(
    files: Any, free_port: int, shared_folder: Path, python: Any
) -> None:
    assert os.geteuid() == 0, "this test drops root's privileges to user nobody"
    warm = files.config(free_port, name="warm.toml")
    files.outbox = shared_folder / "outbox.sqlite"  # nobody may reach it, not write it
    target = files.config(free_port)
    await Notifier.from_config(target).outbox.counts()  # type: ignore[union-attr]  # root creates it
    files.outbox.chmod(0o644)
    run = await python(AS_NOBODY, str(warm), str(target))
    assert run.code == 1, run.err
    assert run.out.strip() == (
        f"OutboxError: the outbox {files.outbox} is not writable by this process; check "
        "its permissions"
    )
    assert (await files.store().counts())["pending"] == 0


async def test_read_only_file_system(
    files: Any, free_port: int, tmp_path: Path, dbnotify: Any
) -> None:
    writable, read_only = tmp_path / "rw", tmp_path / "ro"
    writable.mkdir()
    read_only.mkdir()
    files.outbox = writable / "outbox.sqlite"
    other = Notifier.from_config(files.config(free_port, name="rw.toml")).outbox
    assert other is not None
    await other.counts()  # another process has the outbox open (its -wal and -shm exist)
    files.outbox = read_only / "outbox.sqlite"
    config = files.config(free_port)
    assert sh("mount", "--bind", writable, read_only) == 0
    try:
        assert sh("mount", "-o", "remount,bind,ro", read_only) == 0
        with pytest.raises(OutboxError) as info:
            await Notifier.from_config(config).notify(FAILURE)
        expected = (
            f"the outbox {files.outbox} is not writable by this process; check its permissions"
        )
        assert str(info.value) == expected
        run = await dbnotify(*SEND, "--no-wait", "-c", str(config))
        assert run.code == 1
        assert f"error: not sent: {expected}" in run.err
        # nobody has it open: SQLite cannot even create its -shm beside it
        await other.aclose()
        with pytest.raises(OutboxError) as info:
            await Notifier.from_config(config).notify(FAILURE)
        assert str(info.value) == (
            f"cannot open the outbox {files.outbox}; check that its folder exists and is writable"
        )
    finally:
        sh("umount", "-l", read_only)
