"""``GET /v1/plugins`` and ``GET /v1/schema/{type}``: the channel types installed, and
each one's configuration schema, the very document ``dbnotify schema TYPE`` prints."""

from __future__ import annotations

from typing import Any

import attrs

from dbnotify.config.model import Scope
from dbnotify.schema import channel_schema
from dbnotify.serve.endpoints import Call, Routes
from dbnotify.serve.problems import ApiError, Problem

routes = Routes("plugins")


@attrs.frozen
class PluginInfo:
    type: str
    distribution: str
    version: str
    description: str
    user_delivery: bool


@attrs.frozen
class PluginFailure:
    type: str
    distribution: str
    version: str
    error: str


@attrs.frozen
class PluginList:
    plugins: list[PluginInfo]
    failed: list[PluginFailure]


@routes.route(
    "GET",
    "/v1/plugins",
    summary="The channel types installed (and those that failed to load)",
    scope=Scope.READ,
    reply=PluginList,
)
async def list_plugins(call: Call) -> PluginList:
    registry = call.service.plugins
    loaded = [
        PluginInfo(p.type, p.distribution, p.version, p.info.description, p.info.user_delivery)
        for p in registry.all()
    ]
    failed = [PluginFailure(f.name, f.distribution, f.version, f.error) for f in registry.failures]
    return PluginList(loaded, failed)


SCHEMA_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "description": "a JSON Schema (draft 2020-12) of a channel's configuration block",
}


@routes.route(
    "GET",
    "/v1/schema/{type}",
    summary="The JSON Schema of a channel type's configuration (as `dbnotify schema` prints)",
    scope=Scope.READ,
    reply=SCHEMA_DOCUMENT,
    errors=(404,),
)
async def channel_type_schema(call: Call) -> dict[str, Any]:
    registry = call.service.plugins
    wanted = call.path("type")
    plugin = registry.get(wanted)
    if plugin is None:
        raise ApiError(
            404,
            f"no channel type {wanted!r}",
            [Problem("type", registry.explain_missing(wanted), wanted)],
        )
    return channel_schema(plugin.type, plugin.info)
