"""Channels kept in the configuration file: read for the API and the console, and
written back with tomlkit so that the operator's comments and layout survive.

A change is validated exactly as ``dbnotify validate`` validates the file (the whole
new document goes through :func:`dbnotify.config.load.load_config`) before the file is
replaced (write to a temporary file beside it, fsync, rename); then the service reloads.
Secret fields are write-only: reading gives only whether each is set, and an update that
leaves a secret out keeps the one in the file (its literal, ``{ env }`` or ``{ file }``).

INTERFACE STUB: the helper on branch channels15 implements it; the console calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from dbnotify.serve.service import Service


@attrs.frozen
class ChannelView:
    """A channel as the API and the console show it: never a secret's value."""

    name: str
    type: str
    settings: dict[str, Any]
    """The block's keys as in the file, each secret replaced by ``{"set": true}``."""
    secrets: dict[str, bool]
    """Each secret field of the type: whether it is set."""
    routed: bool
    """Whether ``[routing] channels`` names it."""


def list_channels(service: Service) -> list[ChannelView]:
    """Every channel of the file, sorted by name."""
    raise NotImplementedError


def get_channel(service: Service, name: str) -> ChannelView:
    """One channel; :class:`~dbnotify.serve.problems.ApiError` 404 when there is none."""
    raise NotImplementedError


async def save_channel(
    service: Service, name: str, block: Mapping[str, Any], *, create: bool
) -> ChannelView:
    """Create (``create``: 409 if it exists) or replace the channel ``name`` with
    ``block`` (``type`` included; secrets left out are kept), validate the whole file,
    write it and reload. 422 with each problem (field, value, fix) when invalid."""
    raise NotImplementedError


async def delete_channel(service: Service, name: str) -> None:
    """Remove the channel and its mentions in ``[routing]``; 404 when there is none,
    409 when the result would not validate (say, it is another channel's fallback)."""
    raise NotImplementedError


async def test_channel(service: Service, block: Mapping[str, Any], *, name: str) -> Any:
    """Run the plugin's ``test`` on ``block`` (saved or not; a saved channel's secrets
    fill in those left out) and return the staged report (``TestReport``): resolve,
    connect, TLS, EHLO, AUTH, send, each with its detail and hint."""
    raise NotImplementedError
