"""A reference for durable mode on PostgreSQL: procrastinate doing the same sends.

One procrastinate job per email, deferred as dbnotify's events are submitted (an
``asyncio.gather`` of one ``defer_async()`` each, each its own commit), run by one
procrastinate worker in this process (``run_worker_async``, concurrency 32, as
dbnotify's worker), started before the first job. Each job builds the naive baseline's
message (``EmailMessage``) and sends it with aiosmtplib over one of 8 connections kept
open for the run (as the baselines and dbnotify's pool do). Timed until every job is
``succeeded`` in procrastinate's table. Its tables live in the ``public`` schema of the
bench's own cluster; each run uses a queue of its own.

procrastinate is not a dependency of dbnotify: it is in the ``bench`` dependency group
(``uv run --group bench ...``); without it, the row says why it was skipped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from typing import Any

from bench import baselines
from bench.workload import RECIPIENTS, SENDER, Content, naive_message

CONCURRENCY = 32
CONNECTIONS = 8
POLL = 0.05


def missing() -> str | None:
    """Why the reference cannot run here, or None."""
    if importlib.util.find_spec("procrastinate") is None:
        return (
            "procrastinate is not installed (it is in the bench dependency group: "
            "python3 -m uv run --group bench python bench/run.py)"
        )
    return None


def version() -> str:
    from importlib.metadata import version as installed

    return installed("procrastinate")


class Procrastinate:
    """procrastinate on the bench's cluster: its schema applied once (:meth:`open`)."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.password = password
        self._runs = 0
        self._ready = False

    async def _app(self) -> Any:
        import procrastinate

        return procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=self.url, kwargs={"password": self.password}, max_size=10
            )
        )

    async def run(
        self, host: str, port: int, count: int, content: Content
    ) -> tuple[baselines.Outcome, float]:
        """``count`` jobs, each an email to the 3 recipients; the outcome, and the seconds
        until the last job was deferred (committed)."""
        import aiosmtplib

        self._runs += 1
        queue = f"bench_{self._runs}"
        app = await self._app()
        outcome = baselines.Outcome(count, count * len(RECIPIENTS))
        clients: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()

        @app.task(name="send_email", queue=queue)  # type: ignore[untyped-decorator]
        async def send_email(number: int) -> None:
            client = await clients.get()
            try:
                errors, _ = await client.send_message(
                    naive_message(content, number), sender=SENDER, recipients=list(RECIPIENTS)
                )
                outcome.delivered += len(RECIPIENTS) - len(errors)
            except Exception as exc:
                outcome.failures.append(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                clients.put_nowait(client)

        async with app.open_async():
            if not self._ready:
                await app.schema_manager.apply_schema_async()
                self._ready = True
            opened = []
            for _ in range(CONNECTIONS):
                client = baselines._client(host, port)
                await client.connect()
                opened.append(client)
                clients.put_nowait(client)
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[queue],
                    concurrency=CONCURRENCY,
                    wait=True,
                    install_signal_handlers=False,
                )
            )
            try:
                await asyncio.sleep(0.2)  # the worker listening, as dbnotify's runs before
                started = time.perf_counter()
                await asyncio.gather(*(send_email.defer_async(number=n) for n in range(count)))
                committed = time.perf_counter() - started
                while True:
                    left = await app.connector.execute_query_one_async(
                        "SELECT count(*) AS n FROM procrastinate_jobs WHERE queue_name = "
                        "%(queue)s AND status IN ('todo', 'doing')",
                        queue=queue,
                    )
                    if left["n"] == 0 or worker.done():
                        break
                    await asyncio.sleep(POLL)
                outcome.seconds = time.perf_counter() - started
                failed = await app.connector.execute_query_one_async(
                    "SELECT count(*) AS n FROM procrastinate_jobs WHERE queue_name = "
                    "%(queue)s AND status <> 'succeeded'",
                    queue=queue,
                )
                if failed["n"]:
                    outcome.failures.append(f"{failed['n']} jobs not succeeded")
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
                for client in opened:
                    try:
                        await client.quit()
                    except aiosmtplib.SMTPException:
                        client.close()
        return outcome, committed
