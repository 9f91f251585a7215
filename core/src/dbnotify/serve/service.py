"""What a running ``dbnotify serve`` holds: the configuration file, the notifier built
from it (with its outbox and in-process worker), and the counters ``/metrics`` shows.

Changing a channel rewrites the file and calls :meth:`Service.reload`: the worker stops
(an attempt in flight is given back to the outbox, as at any stop), and a new notifier
from the file, sharing the open outbox, starts a new one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from pathlib import Path

from dbnotify.config.load import load_config
from dbnotify.config.model import Config, ServeSettings, Writer
from dbnotify.notifier import Notifier
from dbnotify.outbox.store import OutboxStore, open_store
from dbnotify.plugins import PluginRegistry, default_registry
from dbnotify.results import DispatchResult
from dbnotify.serve.idempotency import IdempotencyKeys
from dbnotify.serve.metrics import CountingDeliverer, ServeMetrics

log = logging.getLogger(__name__)


class Service:
    """The state of one server process. Built and closed by the application's lifespan."""

    def __init__(
        self, config_path: Path, config: Config, *, plugins: PluginRegistry | None = None
    ) -> None:
        self.config_path = config_path
        self.plugins = plugins or default_registry()
        self.config = config
        self.outbox: OutboxStore | None = (
            # a server lives to deliver: a SQLite file's work in a process of its own
            # unless [outbox] writer says otherwise (docs/outbox.md#a-writer-process)
            open_store(config.outbox, default_writer=Writer.PROCESS)
            if config.outbox is not None
            else None
        )
        self.metrics = ServeMetrics()
        self.idempotency = IdempotencyKeys()
        self.recent: collections.OrderedDict[str, DispatchResult] = collections.OrderedDict()
        """The latest results of ``POST /v1/events`` by notification id (bounded by its
        module): what the outbox keeps no row of (an event not sent; direct mode)."""
        self.worker: asyncio.Task[None] | None = None
        """The outbox's worker in this process (``None`` without an outbox)."""
        self.notifier = self._notifier(config)
        self.lock = asyncio.Lock()
        """Hold it to rewrite the configuration file and :meth:`reload`: one change at a
        time."""

    @property
    def settings(self) -> ServeSettings:
        return self.config.serve or ServeSettings()

    def _notifier(self, config: Config) -> Notifier:
        """A notifier of ``config`` on the open outbox, its deliveries counted."""
        notifier = Notifier(config, plugins=self.plugins, outbox=self.outbox)
        notifier.deliverer = CountingDeliverer.around(
            notifier.deliverer, self.metrics.count_delivery
        )
        self.metrics.channels(config.channels)
        return notifier

    async def start(self) -> None:
        """Start delivering: the outbox's worker runs in this process."""
        if self.outbox is not None:
            self.worker = self.notifier.start()

    async def reload(self) -> Config:
        """Read the file again and replace the notifier (and its worker) with one built
        from it. Raises :class:`~dbnotify.errors.ConfigError` and changes nothing when
        the file is not valid. Call it with :attr:`lock` held."""
        config = load_config(self.config_path, self.plugins)
        # The old worker stops first: closing it closes the plugins' pooled connections
        # on this loop, which the new worker would otherwise have started to use.
        await self.notifier.aclose()
        self.config = config
        self.notifier = self._notifier(config)
        await self.start()
        return config

    async def aclose(self) -> None:
        await self.notifier.aclose()
        if self.outbox is not None:
            await self.outbox.aclose()
