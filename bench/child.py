"""One bench server in a process of its own: ``python -m bench.child KIND [options]``.

Prints ``READY <port>`` once listening on 127.0.0.1 (port chosen by the OS). Then, for
every ``stats`` line on standard input, prints one line of JSON with its counters. It
exits when standard input closes: the bench going away, however it went, takes its
servers with it.

KIND is ``smtp`` (the aiosmtpd sink), ``http`` (the webhook sink) or ``proxy`` (the
latency proxy: ``--target HOST:PORT --delay SECONDS``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any, Protocol

from bench.proxy import LatencyProxy
from bench.sinks import HTTPSink, SMTPSink


class Server(Protocol):
    async def start(self, host: str = ...) -> int: ...
    async def stop(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...


def _server(args: argparse.Namespace) -> Server:
    if args.kind == "smtp":
        return SMTPSink(pipelining=not args.no_pipelining)
    if args.kind == "http":
        return HTTPSink()
    host, _, port = args.target.rpartition(":")
    return LatencyProxy(host or "127.0.0.1", int(port), args.delay)


async def _main(args: argparse.Namespace) -> None:
    server = _server(args)
    port = await server.start()
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            if line.strip() == b"stats":
                print(json.dumps(server.stats()), flush=True)
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("kind", choices=["smtp", "http", "proxy"])
    parser.add_argument("--target", default="127.0.0.1:25", help="proxy: where to connect")
    parser.add_argument("--delay", type=float, default=0.025, help="proxy: seconds each way")
    parser.add_argument("--no-pipelining", action="store_true", help="smtp: do not offer it")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
