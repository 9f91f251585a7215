"""The route table: each API module declares its endpoints here, once, with what they
need (a scope), take (a body class) and give (a reply class and status), so that the
application, the authentication and the OpenAPI document all read the same table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
from starlette.requests import Request

from dbnotify.config.model import Scope

if TYPE_CHECKING:
    from dbnotify.serve.auth import Caller
    from dbnotify.serve.service import Service


@attrs.frozen
class Call:
    """What a handler gets: the request, the running service, the caller (``None`` on a
    public endpoint) and the body structured into the endpoint's ``body`` class."""

    request: Request
    service: Service
    caller: Caller | None
    body: Any = None

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[Call], Awaitable[Any]]
"""Returns a Starlette ``Response``, or data that becomes the JSON reply
with the endpoint's status (attrs instances, mappings, lists)."""


@attrs.frozen
class Endpoint:
    method: str
    path: str
    """Starlette's form: ``/v1/notifications/{id}``."""
    handler: Handler
    summary: str
    scope: Scope | None
    """What the token needs; ``None``: public (health, the OpenAPI document)."""
    body: type | None = None
    """The attrs class of the JSON body, if any."""
    reply: type | dict[str, Any] | None = None
    """The attrs class (or a JSON Schema) of a successful reply, for the OpenAPI document."""
    status: int = 200
    errors: tuple[int, ...] = ()
    """Error statuses besides those every endpoint may give (400, 401, 403, 413, 422)."""
    tag: str = "api"
    params: tuple[tuple[str, str], ...] = ()
    """Query parameters: (name, description), each a string."""
    in_schema: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers it reads: (name, description), each optional."""
    also: tuple[int, ...] = ()
    """Other success statuses, with the same reply (``POST /v1/events``: 200 in direct
    mode)."""


class Routes:
    """An API module's endpoints, declared with :meth:`route` as a decorator."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        scope: Scope | None,
        body: type | None = None,
        reply: type | dict[str, Any] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        params: tuple[tuple[str, str], ...] = (),
        in_schema: bool = True,
        headers: tuple[tuple[str, str], ...] = (),
        also: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def add(handler: Handler) -> Handler:
            self._endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    summary,
                    scope,
                    body,
                    reply,
                    status,
                    errors,
                    self.tag,
                    params,
                    in_schema,
                    headers,
                    also,
                )
            )
            return handler

        return add

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self._endpoints)
