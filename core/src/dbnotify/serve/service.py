"""What a running ``dbnotify serve`` holds: the configuration file, the notifier built
from it (with its outbox and in-process worker), and the counters ``/metrics`` shows.

Changing a channel rewrites the file and calls :meth:`Service.reload`: the worker stops
(an attempt in flight is given back to the outbox, as at any stop), and a new notifier
from the file, sharing the open outbox, starts a new one.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from dbnotify.config.load import load_config
from dbnotify.config.model import Config, ServeSettings
from dbnotify.notifier import Notifier
from dbnotify.outbox.store import OutboxStore, open_store
from dbnotify.plugins import PluginRegistry, default_registry

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
            open_store(config.outbox) if config.outbox is not None else None
        )
        self.notifier = Notifier(config, plugins=self.plugins, outbox=self.outbox)
        self.lock = asyncio.Lock()
        """Hold it to rewrite the configuration file and :meth:`reload`: one change at a
        time."""

    @property
    def settings(self) -> ServeSettings:
        return self.config.serve or ServeSettings()

    async def start(self) -> None:
        """Start delivering: the outbox's worker runs in this process."""
        if self.outbox is not None:
            self.notifier.start()

    async def reload(self) -> Config:
        """Read the file again and replace the notifier (and its worker) with one built
        from it. Raises :class:`~dbnotify.errors.ConfigError` and changes nothing when
        the file is not valid. Call it with :attr:`lock` held."""
        config = load_config(self.config_path, self.plugins)
        # The old worker stops first: closing it closes the plugins' pooled connections
        # on this loop, which the new worker would otherwise have started to use.
        await self.notifier.aclose()
        self.config = config
        self.notifier = Notifier(config, plugins=self.plugins, outbox=self.outbox)
        await self.start()
        return config

    async def aclose(self) -> None:
        await self.notifier.aclose()
        if self.outbox is not None:
            await self.outbox.aclose()
