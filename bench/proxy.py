"""A TCP proxy that adds latency: every chunk arrives ``delay`` seconds after it was sent.

Each direction of each connection has one reader and one writer task. The reader stamps
every chunk it reads with ``arrival + delay`` and queues it at once, so it keeps reading
while earlier chunks are still "in flight"; the writer sends each chunk when it is due,
in order. Chunks are delayed, not serialised: with 25 ms each way, a reply arrives 50 ms
after its command however much else is in flight, as on a real link with that round
trip (but unlimited bandwidth and no loss). Connection set-up itself is not delayed
(see docs/performance.md).

Runs in a process of its own (``bench.child``), so that the client's work under
measurement does not delay the "network", nor the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

Chunk = tuple[float, bytes | None]


class LatencyProxy:
    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.port = 0
        self.connections = 0
        self.open = 0
        self.chunks = {"client_to_server": 0, "server_to_client": 0}
        self.bytes = {"client_to_server": 0, "server_to_client": 0}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._accept, host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "open": self.open,
            "chunks": dict(self.chunks),
            "bytes": dict(self.bytes),
        }

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open += 1
        server_w: asyncio.StreamWriter | None = None
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
            await asyncio.gather(
                self._direction(client_r, server_w, "client_to_server"),
                self._direction(server_r, client_w, "server_to_client"),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): the proxy goes away with whatever was in flight
        finally:
            self.open -= 1
            for w in (client_w, server_w):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def _direction(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str
    ) -> None:
        queue: asyncio.Queue[Chunk] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def read() -> None:
            try:
                while data := await reader.read(65536):
                    queue.put_nowait((loop.time() + self.delay, data))
                    self.chunks[name] += 1
                    self.bytes[name] += len(data)
            except OSError:
                pass
            queue.put_nowait((loop.time() + self.delay, None))  # EOF travels too

        async def write() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        reading = asyncio.create_task(read())
        try:
            await write()
        except OSError:
            pass
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
