"""The ASGI application: every module's endpoints behind one authentication and one
error handling, the OpenAPI document, and the console.

Whatever goes wrong, the client gets problem JSON with the right status; an unexpected
exception is logged here and answered 500 with no detail of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dbnotify.config.model import Config, ServeSettings
from dbnotify.plugins import PluginRegistry
from dbnotify.serve.api import channels, events, health, outbox, plugins
from dbnotify.serve.auth import bearer
from dbnotify.serve.bodies import JsonReply, problem, problem_reply, read_model
from dbnotify.serve.console import console_mount
from dbnotify.serve.endpoints import Call, Endpoint
from dbnotify.serve.openapi import openapi_document
from dbnotify.serve.problems import ApiError, Problem
from dbnotify.serve.service import Service

log = logging.getLogger(__name__)

ENDPOINTS: tuple[Endpoint, ...] = (
    *plugins.routes,
    *channels.routes,
    *events.routes,
    *channels.routes,
    *outbox.routes,
    *health.routes,
)
"""Every API endpoint, in the order the OpenAPI document lists them."""


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


Answer = Callable[[Request], Awaitable[Response]]


def _handle(endpoint: Endpoint) -> Answer:
    """What answers one endpoint: its token's scope checked, its body read, its reply
    written."""

    async def run(request: Request) -> Response:
        service = service_of(request)
        settings = service.settings
        caller = None
        if endpoint.scope is not None:
            caller = bearer(settings.tokens, request.headers.get("authorization"))
            caller.require(endpoint.scope, f"{endpoint.method} {endpoint.path}")
        body: Any = None
        if endpoint.body is not None:
            body = await read_model(request, endpoint.body, settings.max_body)
        result = await endpoint.handler(Call(request, service, caller, body))
        if isinstance(result, Response):
            return result
        return JsonReply(result, status_code=endpoint.status)

    return run


def _by_method(handlers: dict[str, Answer]) -> Answer:
    async def run(request: Request) -> Response:
        return await handlers[request.method](request)

    return run


def _routes(endpoints: Iterable[Endpoint]) -> list[Route]:
    """One route per path, with every method of the path: a wrong method is then a 405
    whose ``Allow`` lists them all (a route per endpoint would give only the first's)."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    routes = []
    for path, methods in by_path.items():
        handlers = {method: _handle(e) for method, e in methods.items()}
        if "GET" in handlers:
            handlers.setdefault("HEAD", handlers["GET"])
        names = "_or_".join(e.handler.__name__ for e in methods.values())
        routes.append(Route(path, _by_method(handlers), methods=list(handlers), name=names))
    return routes


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem_reply(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        fix = "see /openapi.json for the API's paths"
        return problem(404, f"no such path: {request.url.path}", (Problem("path", fix),))
    if exc.status_code == 405:
        given = exc.headers.get("Allow", "") if exc.headers else ""
        allowed = ", ".join(sorted(m.strip() for m in given.split(",") if m.strip()))
        reply = problem(
            405,
            f"{request.method} is not allowed on {request.url.path}",
            (
                Problem(
                    "method", f"use {allowed}" if allowed else "see /openapi.json", request.method
                ),
            ),
        )
        if allowed:
            reply.headers["Allow"] = allowed
        return reply
    return problem(exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal error; the server's log says more")


def create_app(
    config_path: Path,
    config: Config,
    *,
    plugins_registry: PluginRegistry | None = None,
    extra_routes: Iterable[BaseRoute] = (),
) -> Starlette:
    """The application serving ``config`` (read from ``config_path``, which channel
    changes rewrite). The notifier and its worker start with the server's lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = Service(config_path, config, plugins=plugins_registry)
        app.state.service = service
        await service.start()
        try:
            yield
        finally:
            await service.aclose()

    # drawn once, on first request: the route table and the plugins do not change
    document: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        if not document:
            document.update(openapi_document(ENDPOINTS, service_of(request).plugins))
        return JsonReply(document)

    routes: list[BaseRoute] = [
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        *_routes(ENDPOINTS),
        *extra_routes,
    ]
    if (config.serve or ServeSettings()).console:  # [serve] console = false: API only
        routes.append(console_mount())
    handlers: dict[Any, Any] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    }
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
