"""The SQLite outbox in a process of its own: ``[outbox] writer = "process"``.

In a host's process, the outbox's SQLite work shares the interpreter's lock (the GIL)
with the host's event loop: every statement hands the lock to the loop and waits to get
it back, and the records' transactions stall the worker's pipeline while the loop
renders. A child process (``python -m dbnotify.outbox.sqlite.writer``) runs the same
:class:`~dbnotify.outbox.sqlite.store.SQLiteStore` methods on a core of its own; the
host's loop only writes each request to a pipe and reads the answer.

The protocol: frames of a 4-byte length and a pickle, ``(method, args)`` to the child
and ``(ok, value)`` back, over the child's stdin and stdout; the three requests of every
message (enqueue, claim, record) as plain values (:mod:`.plain`), the rest as they are.
The child answers in the order it was asked (one connection, one transaction at a
time), so the host matches answers to callers first in, first out. The child is the
host's own program: nothing else writes to its pipe, and it unpickles only what its
parent sent.

A child that ends (killed, out of memory) fails what was waiting with
:class:`~dbnotify.errors.Unreachable`, as a broken database connection does: the next
operation starts another child, and the worker tries an unrecorded attempt again while
its lease lasts. What was committed stays committed: each answer is sent after its
transaction's commit.
"""

from __future__ import annotations

import asyncio
import collections
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from dbnotify.errors import OutboxError, Unreachable
from dbnotify.outbox import wording
from dbnotify.outbox.sqlite.plain import CODECS, PLAIN
from dbnotify.outbox.sqlite.store import SQLiteStore

T = TypeVar("T")

MODULE = "dbnotify.outbox.sqlite.writer"
STDERR_LINES = 20
"""The child's last lines of stderr kept, to say why it ended."""
STOP_WAIT = 10.0
"""Seconds a closing child gets to finish what it was asked, before it is killed."""


def _frame(value: Any) -> bytes:
    """``value`` pickled, after its length (4 bytes, big-endian)."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(4, "big") + data


class _Child(asyncio.SubprocessProtocol):
    """One writer process, bound to the event loop that started it; the protocol reads
    its answers (stdout) and its last words (stderr) as they arrive."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.path = path
        self.ended: str | None = None
        """Why the child is gone; ``None`` while it runs (or starts)."""
        self._waiting: collections.deque[asyncio.Future[tuple[bool, Any]]] = collections.deque()
        self._answers = bytearray()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._said = b""
        self._problem = ""
        self._transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._exited: asyncio.Future[None] = self.loop.create_future()
        self._guarding: asyncio.Task[None] | None = None
        self._started = self.loop.create_task(self._start(busy_timeout))

    async def _start(self, busy_timeout: float) -> None:
        try:
            transport, _ = await self.loop.subprocess_exec(
                lambda: self,
                sys.executable,
                "-m",
                MODULE,
                self.path,
                repr(busy_timeout),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # not in the terminal's process group: Ctrl-C stops the host, which
                # then records what is in flight through this child before closing it
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            self.ended = wording.writer_failed(self.path, f"could not be started: {exc}")
            raise OutboxError(self.ended) from None
        self._transport = transport
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        self._stdin = stdin
        # the loop ending with the store still open cancels this: the child goes with it
        self._guarding = self.loop.create_task(self._guard())

    @property
    def gone(self) -> bool:
        """Ended, or known to have exited (its last answers may not all be read yet)."""
        transport = self._transport
        return self.ended is not None or (
            transport is not None and transport.get_returncode() is not None
        )

    async def call(self, name: str, args: tuple[Any, ...]) -> Any:
        await asyncio.shield(self._started)
        if self.ended is not None:  # its waiters were failed: this one would wait forever
            raise Unreachable(self.ended)
        assert self._stdin is not None
        future: asyncio.Future[tuple[bool, Any]] = self.loop.create_future()
        self._waiting.append(future)
        self._stdin.write(_frame((name, args)))
        ok, value = await future
        if ok:
            return value
        raise value

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            *lines, said = (self._said + data).split(b"\n")
            self._said = said[-4096:]  # a line without an end is kept only so far
            self._stderr.extend(line.decode("utf-8", "replace").strip() for line in lines)
            return
        if self._problem:  # stopped for an answer it cannot have meant: the rest is noise
            return
        answers = self._answers
        answers += data
        while len(answers) >= 4:
            end = 4 + int.from_bytes(answers[:4], "big")
            if len(answers) < end:
                return
            body = bytes(answers[4:end])
            del answers[:end]
            try:
                answer = pickle.loads(body)  # noqa: S301 - our own child's, over its pipe
                future = self._waiting.popleft()
            except Exception as exc:  # noqa: BLE001 - an answer it cannot have meant: stop it
                self._problem = f"sent an answer that could not be read ({exc!r}), "
                assert self._transport is not None
                self._transport.kill()
                return
            if not future.done():  # a caller cancelled meanwhile: its work stands
                future.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        """The child exited and its pipes are drained: whoever still waits fails, with
        what it said last."""
        assert self._transport is not None
        code = self._transport.get_returncode()
        last = self._said.decode("utf-8", "replace").strip()  # a last line without its end
        said = "; ".join(line for line in (*self._stderr, last) if line)
        self.ended = wording.writer_failed(
            self.path,
            f"{self._problem}ended ({_exit_text(code)})" + (f": {said}" if said else ""),
        )
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(Unreachable(self.ended))
        self._transport.close()
        if not self._exited.done():
            self._exited.set_result(None)

    async def _guard(self) -> None:
        try:
            await asyncio.shield(self._exited)
        except asyncio.CancelledError:
            # the loop is ending and nobody closed the store: stop the child (killed if
            # it is still running; a transaction it had begun is rolled back)
            assert self._transport is not None
            self._transport.close()
            raise

    async def close(self) -> None:
        """Let the child finish what it was asked (its stdin closes), then reap it."""
        try:
            await asyncio.shield(self._started)
        except OutboxError:
            return
        assert self._stdin is not None
        assert self._transport is not None
        self._stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), STOP_WAIT)
        except TimeoutError:
            self._transport.kill()
            await self._exited


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class WriterStore(SQLiteStore):
    """The SQLite outbox at ``path``, its work done by a child process of this host.

    Started on first use, by the event loop in use (an outbox a ``Notifier`` keeps across
    ``notify_sync`` calls, each on a loop of its own, starts one per call: the writer
    process is for hosts and workers that run a loop for long).
    """

    loop_bound = True
    batch_claims = False
    write_group = 64

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        super().__init__(path, busy_timeout=busy_timeout)
        self._child: _Child | None = None

    def __repr__(self) -> str:
        return f"WriterStore({self.path!r})"

    async def _run(self, method: Callable[..., T], *args: Any) -> T:
        child = self._child
        if child is None or child.gone or child.loop is not asyncio.get_running_loop():
            child = self._child = _Child(self.path, self.database.busy_timeout)
        name = method.__name__
        codec = CODECS.get(name, PLAIN)
        result: T = codec.result(await child.call(name, codec.send(args)))
        return result

    async def aclose(self) -> None:
        child, self._child = self._child, None
        if child is not None and child.loop is asyncio.get_running_loop():
            await child.close()
        await super().aclose()


# -- the child -------------------------------------------------------------------------


def serve(path: str, busy_timeout: float, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer the parent's requests until its end of the pipe closes."""
    store = SQLiteStore(path, busy_timeout=busy_timeout)
    try:
        while head := stdin.read(4):
            request = _read_exactly(stdin, int.from_bytes(head, "big"))
            name, args = pickle.loads(request)  # noqa: S301 - from the parent, over its pipe
            try:
                if not name.startswith("_") or not callable(getattr(SQLiteStore, name, None)):
                    raise ValueError(f"not an operation of the SQLite outbox: {name!r}")
                codec = CODECS.get(name, PLAIN)
                value = getattr(store, name)(*codec.receive(args))
                answer: tuple[bool, Any] = (True, codec.answer(value))
            except Exception as exc:  # noqa: BLE001 - raised again in the parent
                answer = (False, _portable(exc))
            stdout.write(_frame(answer))
            stdout.flush()
    finally:
        store.database.close()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the parent closed the pipe in the middle of a request")
    return data


def _portable(exc: Exception) -> Exception:
    """``exc`` if the parent can unpickle it as it is, else a RuntimeError that says it."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - pickled just now, here
    except Exception:  # noqa: BLE001 - any exception that does not survive the trip
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def main() -> None:
    path, busy_timeout = sys.argv[1], float(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this ends
    # the answers get a descriptor of their own: a stray print() goes to stderr
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(path, busy_timeout, sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
