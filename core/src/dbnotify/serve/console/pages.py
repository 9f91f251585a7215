"""The console's pages: sign in and out, channels (list, add, edit, test, delete),
history, dead letters with Retry, and each event's email preview.

Every handler goes through :meth:`Console.page`: the session (else the sign-in page),
on POST the same-origin and CSRF checks and the scope to change anything, and the
security headers; an :class:`~dbnotify.serve.problems.ApiError` becomes an error page
with each problem's field, value and fix, anything else a plain 500 page (the server's
log has the rest).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import attrs
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dbnotify.config.model import Scope
from dbnotify.events import CATALOGUE
from dbnotify.outbox.model import HistoryRow, RecipientState, iso
from dbnotify.outbox.queries import RetryTargetMissing, check_retry_target, parse_time
from dbnotify.rendering import template_problem
from dbnotify.schema import channel_schema
from dbnotify.serve import channel_file
from dbnotify.serve.auth import find_token
from dbnotify.serve.console.forms import (
    SECRET_KINDS,
    FormField,
    form_fields,
    read_block,
    shown_values,
    submitted_values,
)
from dbnotify.serve.console.guard import (
    PREVIEW_POLICY,
    check_csrf,
    read_form,
    refused,
    same_origin,
    secure_headers,
)
from dbnotify.serve.console.previews import preview
from dbnotify.serve.console.sessions import COOKIE, PRE_COOKIE, SessionStore, Viewer
from dbnotify.serve.problems import ApiError, Problem
from dbnotify.serve.service import Service

log = logging.getLogger(__name__)

STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
"""The console's own files (no CDN: an operator's network may reach nothing else)."""
FRAGMENT = "x-console-fragment"
"""Sent by console.js when it wants only the test report, not the whole page."""


@attrs.frozen
class Ctx:
    """What a page handler gets."""

    request: Request
    service: Service
    viewer: Viewer | None
    form: Mapping[str, str]

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


PageHandler = Callable[[Ctx], Awaitable[Response]]


class Console:
    """The console's templates, sessions and routes (one per application)."""

    def __init__(self) -> None:
        self.sessions = SessionStore()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("dbnotify.serve.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = when

    def routes(self) -> list[BaseRoute]:
        """The console's routes, for a ``Mount("/console", routes=...)``."""
        get, post = ["GET"], ["POST"]
        return [
            Route("/", self.page(self.home), methods=get),
            Route("/static/{name}", self.static, methods=get),
            Route("/sign-in", self.page(self.sign_in_form, public=True), methods=get),
            Route("/sign-in", self.page(self.sign_in, public=True), methods=post),
            Route("/sign-out", self.page(self.sign_out), methods=post),
            Route("/channels", self.page(self.channels), methods=get),
            Route("/channels/new", self.page(self.new_channel), methods=get),
            Route("/channels/new", self.page(self.create_channel, change=True), methods=post),
            Route("/channels/{name}", self.page(self.edit_channel), methods=get),
            Route("/channels/{name}", self.page(self.update_channel, change=True), methods=post),
            Route("/channels/{name}/delete", self.page(self.confirm_delete), methods=get),
            Route(
                "/channels/{name}/delete", self.page(self.delete_channel, change=True), methods=post
            ),
            Route("/history", self.page(self.history), methods=get),
            Route("/dead-letters", self.page(self.dead_letters), methods=get),
            Route("/dead-letters/retry", self.page(self.retry, change=True), methods=post),
            Route("/previews", self.page(self.previews), methods=get),
            Route("/previews/{event}", self.page(self.preview_page), methods=get),
            Route("/previews/{event}/email.html", self.page(self.preview_html), methods=get),
            Route("/{rest:path}", self.page(self.not_found, public=True), methods=[*get, *post]),
        ]

    # the frame around every page

    def page(self, handler: PageHandler, *, public: bool = False, change: bool = False) -> Any:
        async def run(request: Request) -> Response:
            viewer: Viewer | None = None
            try:
                service: Service = request.app.state.service
                viewer = self.sessions.find(request.cookies.get(COOKIE), service.settings.tokens)
                if viewer is None and not public:
                    return secure_headers(RedirectResponse(f"{base(request)}/sign-in", 303))
                form: Mapping[str, str] = {}
                if request.method == "POST":
                    same_origin(request)
                    form = await read_form(request, service.settings.max_body)
                    expected = viewer.csrf if viewer else request.cookies.get(PRE_COOKIE)
                    check_csrf(form, expected)
                    if change and viewer is not None and not viewer.can_change:
                        raise refused(
                            f"token {viewer.name!r} may only read",
                            "scopes",
                            f"sign in with a token whose scopes include 'admin' (give it in "
                            f"[serve.tokens.{viewer.name}] scopes) to change anything",
                            "read",
                        )
                response = await handler(Ctx(request, service, viewer, form))
            except ApiError as exc:
                response = self.error_page(request, viewer, exc)
            except Exception as exc:
                log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
                response = self.error_page(
                    request,
                    viewer,
                    ApiError(500, "internal error", [Problem(None, "the server's log says more")]),
                )
            return secure_headers(response)

        return run

    def render(
        self,
        request: Request,
        viewer: Viewer | None,
        template_name: str,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        template = self.templates.get_template(template_name)
        html = template.render(base=base(request), viewer=viewer, path=request.url.path, **values)
        return HTMLResponse(html, status_code=status)

    def error_page(self, request: Request, viewer: Viewer | None, error: ApiError) -> Response:
        reply = self.render(request, viewer, "error.html", error.status, error=error)
        for key, value in error.headers.items():
            if key.lower() != "www-authenticate":
                reply.headers[key] = value
        return reply

    async def static(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in STATIC:
            return secure_headers(Response("not found", 404, media_type="text/plain"))
        data = resources.files("dbnotify.serve.console").joinpath("static", name).read_bytes()
        reply = secure_headers(Response(data, media_type=STATIC[name]))
        reply.headers["Cache-Control"] = "no-cache"
        return reply

    async def not_found(self, ctx: Ctx) -> Response:
        raise ApiError(
            404,
            f"no console page {ctx.request.url.path}",
            [Problem("path", f"start from {base(ctx.request)}/channels", ctx.request.url.path)],
        )

    # signing in and out

    async def home(self, ctx: Ctx) -> Response:
        return RedirectResponse(f"{base(ctx.request)}/channels", 303)

    async def sign_in_form(self, ctx: Ctx, status: int = 200, error: str = "") -> Response:
        if ctx.viewer is not None and not error:
            return RedirectResponse(f"{base(ctx.request)}/channels", 303)
        pre = ctx.request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
        reply = self.render(ctx.request, None, "sign_in.html", status, csrf=pre, error=error)
        _cookie(reply, ctx.request, PRE_COOKIE, pre)
        return reply

    async def sign_in(self, ctx: Ctx) -> Response:
        given = ctx.form.get("token", "").strip()
        caller = find_token(ctx.service.settings.tokens, given) if given else None
        if caller is None:
            what = "no token given" if not given else "unknown token"
            return await self.sign_in_form(
                ctx, 401, f"{what}: use a token from [serve.tokens] of the configuration"
            )
        if not caller.token.allows(Scope.READ):
            return await self.sign_in_form(
                ctx,
                403,
                f"token {caller.name!r} may only send events; the console needs a token "
                "with the 'read' or 'admin' scope",
            )
        session = self.sessions.start(caller.name, caller.token)
        reply = RedirectResponse(f"{base(ctx.request)}/channels", 303)
        self.sessions.end(ctx.request.cookies.get(COOKIE))
        _cookie(reply, ctx.request, COOKIE, session.id)
        reply.delete_cookie(PRE_COOKIE, path=base(ctx.request))
        return reply

    async def sign_out(self, ctx: Ctx) -> Response:
        self.sessions.end(ctx.request.cookies.get(COOKIE))
        reply = RedirectResponse(f"{base(ctx.request)}/sign-in", 303)
        reply.delete_cookie(COOKIE, path=base(ctx.request))
        return reply

    # channels

    async def channels(self, ctx: Ctx) -> Response:
        service = ctx.service
        views = channel_file.list_channels(service)
        last: dict[str, HistoryRow] = {}
        parked: dict[str, Any] = {}
        if service.outbox is not None:
            for view in views:
                rows = await service.outbox.history(channel=view.name, limit=1)
                if rows:
                    last[view.name] = rows[0]
            parked = dict(await service.outbox.parked())
        return self.render(
            ctx.request,
            ctx.viewer,
            "channels.html",
            channels=views,
            last=last,
            parked=parked,
            outbox=service.outbox is not None,
            saved=ctx.request.query_params.get("saved", ""),
            deleted=ctx.request.query_params.get("deleted", ""),
        )

    def _schema(self, service: Service, channel_type: str) -> dict[str, Any]:
        plugin = service.plugins.get(channel_type)
        if plugin is None:
            raise ApiError(
                404,
                f"no channel type {channel_type!r}",
                [Problem("type", service.plugins.explain_missing(channel_type), channel_type)],
            )
        return channel_schema(plugin.type, plugin.info)

    async def new_channel(self, ctx: Ctx) -> Response:
        channel_type = ctx.request.query_params.get("type", "")
        if not channel_type:
            plugins = ctx.service.plugins.all()
            return self.render(ctx.request, ctx.viewer, "choose_type.html", plugins=plugins)
        return self._form(ctx, channel_type, name="", values={}, secrets={}, create=True)

    async def edit_channel(self, ctx: Ctx) -> Response:
        view = channel_file.get_channel(ctx.service, ctx.path("name"))
        fields = form_fields(self._schema(ctx.service, view.type))
        return self._form(
            ctx,
            view.type,
            name=view.name,
            values=shown_values(fields, view.settings),
            secrets=view.secrets,
            create=False,
            warnings=view.warnings,
        )

    def _form(
        self,
        ctx: Ctx,
        channel_type: str,
        *,
        name: str,
        values: Mapping[str, str],
        secrets: Mapping[str, bool],
        create: bool,
        status: int = 200,
        problems: tuple[Problem, ...] = (),
        report: Any = None,
        detail: str = "",
        warnings: tuple[str, ...] = (),
    ) -> Response:
        schema = self._schema(ctx.service, channel_type)
        fields = form_fields(schema)
        known = {f.key for f in fields}
        return self.render(
            ctx.request,
            ctx.viewer,
            "channel_form.html",
            status,
            channel_type=channel_type,
            description=schema.get("description", ""),
            name=name,
            fields=fields,
            values=values,
            secrets=secrets,
            secret_kinds=SECRET_KINDS,
            create=create,
            problems=problems,
            by_field=_by_field(problems, name, known),
            report=report,
            detail=detail,
            warnings=warnings,
        )

    async def create_channel(self, ctx: Ctx) -> Response:
        channel_type = ctx.form.get("type", "")
        return await self._submit(ctx, channel_type, ctx.form.get("name", "").strip(), {}, True)

    async def update_channel(self, ctx: Ctx) -> Response:
        view = channel_file.get_channel(ctx.service, ctx.path("name"))
        return await self._submit(ctx, view.type, view.name, view, False)

    async def _submit(
        self, ctx: Ctx, channel_type: str, name: str, saved: Any, create: bool
    ) -> Response:
        """Test or save the form's channel (``action``); on a problem, the form again
        with each problem beside its field."""
        fields = form_fields(self._schema(ctx.service, channel_type))
        block, problems = read_block(fields, ctx.form)
        secrets: Mapping[str, bool] = saved.secrets if saved else {}
        warnings: tuple[str, ...] = saved.warnings if saved else ()
        if saved:  # keys the form does not draw (quiet_hours, rate_limit) are kept
            drawn = {f.key for f in fields}
            for key, value in saved.settings.items():
                if key not in drawn and key != "type":
                    block.setdefault(key, value)
        block = {"type": channel_type, **block}
        action = ctx.form.get("action", "save")
        again = submitted_values(fields, ctx.form)
        if not name and action == "save":
            problems.insert(0, Problem("name", "give the channel a name, e.g. ops-mail"))
        if problems:
            return self._form(
                ctx,
                channel_type,
                name=name,
                values=again,
                secrets=secrets,
                warnings=warnings,
                create=create,
                status=422,
                problems=tuple(problems),
                detail="the form has problems",
            )
        try:
            if action == "test":
                # a new channel is tested as unsaved: never with a saved one's secrets
                tested = "" if create else name
                report = await channel_file.test_channel(ctx.service, block, name=tested)
                if FRAGMENT in ctx.request.headers:
                    return self.render(ctx.request, ctx.viewer, "test_report.html", report=report)
                return self._form(
                    ctx,
                    channel_type,
                    name=name,
                    values=again,
                    secrets=secrets,
                    warnings=warnings,
                    create=create,
                    report=report,
                )
            await channel_file.save_channel(ctx.service, name, block, create=create)
        except ApiError as exc:
            if FRAGMENT in ctx.request.headers:
                return self.render(
                    ctx.request,
                    ctx.viewer,
                    "test_report.html",
                    exc.status,
                    error=exc,
                    report=None,
                )
            return self._form(
                ctx,
                channel_type,
                name=name,
                values=again,
                secrets=secrets,
                warnings=warnings,
                create=create,
                status=exc.status,
                problems=exc.problems,
                detail=exc.detail,
            )
        return RedirectResponse(f"{base(ctx.request)}/channels?saved={name}", 303)

    async def confirm_delete(self, ctx: Ctx) -> Response:
        view = channel_file.get_channel(ctx.service, ctx.path("name"))
        return self.render(ctx.request, ctx.viewer, "delete.html", channel=view)

    async def delete_channel(self, ctx: Ctx) -> Response:
        name = ctx.path("name")
        await channel_file.delete_channel(ctx.service, name)
        return RedirectResponse(f"{base(ctx.request)}/channels?deleted={name}", 303)

    # history and dead letters

    async def history(self, ctx: Ctx) -> Response:
        query = ctx.request.query_params
        filters = {k: query.get(k, "").strip() for k in FILTERS}
        rows: list[HistoryRow] = []
        if ctx.service.outbox is not None:
            rows = await ctx.service.outbox.history(**_history_filters(filters))
        return self.render(
            ctx.request,
            ctx.viewer,
            "history.html",
            rows=rows,
            filters=filters,
            outbox=ctx.service.outbox is not None,
            events=list(CATALOGUE),
            channels=sorted(ctx.service.config.channels),
            statuses=[s.value for s in RecipientState],
        )

    async def dead_letters(self, ctx: Ctx) -> Response:
        rows: list[HistoryRow] = []
        parked: dict[str, Any] = {}
        if ctx.service.outbox is not None:
            rows = await ctx.service.outbox.history(status=RecipientState.DEAD, limit=1000)
            parked = dict(await ctx.service.outbox.parked())
        return self.render(
            ctx.request,
            ctx.viewer,
            "dead_letters.html",
            rows=rows,
            parked=parked,
            outbox=ctx.service.outbox is not None,
            retried=ctx.request.query_params.get("retried", ""),
        )

    async def retry(self, ctx: Ctx) -> Response:
        store = ctx.service.outbox
        if store is None:
            raise ApiError(
                409, "no outbox", [Problem("outbox", "add [outbox] to the configuration")]
            )
        given = ctx.form.get("delivery_id", "").strip()
        if given == "all":
            made = await store.retry(dead=True)
        elif given.isdigit():
            try:
                await check_retry_target(
                    store, ctx.service.config.channels, delivery_id=int(given), channel=None
                )
            except RetryTargetMissing as exc:
                fix = f"{exc.message}; choose one on the dead letters page"
                raise ApiError(404, exc.message, [Problem(exc.field, fix, exc.value)]) from None
            made = await store.retry(delivery_id=int(given))
        else:
            raise ApiError(
                422,
                "which delivery to retry?",
                [Problem("delivery_id", "a delivery's number, or all", given)],
            )
        return RedirectResponse(f"{base(ctx.request)}/dead-letters?retried={made}", 303)

    # previews

    async def previews(self, ctx: Ctx) -> Response:
        events = [(spec.id, spec.title, spec.severity.value) for spec in CATALOGUE.values()]
        return self.render(ctx.request, ctx.viewer, "previews.html", events=events)

    async def preview_page(self, ctx: Ctx) -> Response:
        shown = _preview(ctx)
        return self.render(
            ctx.request, ctx.viewer, "preview.html", preview=shown, events=list(CATALOGUE)
        )

    async def preview_html(self, ctx: Ctx) -> Response:
        return secure_headers(HTMLResponse(_preview(ctx).html), policy=PREVIEW_POLICY)


FILTERS = ("event", "channel", "recipient", "status", "since", "until", "limit")


def _history_filters(given: Mapping[str, str]) -> dict[str, Any]:
    """The store's ``history`` arguments from the filter form; 400 naming the field."""
    found: dict[str, Any] = {"limit": 100}
    for key, store_key in (("event", "event_type"), ("channel", "channel")):
        if given[key]:
            found[store_key] = given[key]
    if given["recipient"]:
        found["recipient"] = given["recipient"]
    if given["status"]:
        try:
            found["status"] = RecipientState(given["status"])
        except ValueError:
            states = ", ".join(s.value for s in RecipientState)
            raise _bad_filter("status", given["status"], f"one of {states}") from None
    for key in ("since", "until"):
        if given[key]:
            try:
                found[key] = parse_time(given[key])
            except ValueError as exc:
                raise _bad_filter(key, given[key], f"{exc}; UTC when no zone is given") from None
    if given["limit"]:
        if not given["limit"].isdigit() or not 1 <= int(given["limit"]) <= 10_000:
            raise _bad_filter("limit", given["limit"], "a number from 1 to 10000")
        found["limit"] = int(given["limit"])
    return found


def _bad_filter(field: str, value: str, fix: str) -> ApiError:
    return ApiError(400, f"bad history filter {field}", [Problem(field, fix, value)])


def _preview(ctx: Ctx) -> Any:
    event_type = ctx.path("event")
    if event_type not in CATALOGUE:
        raise ApiError(
            404,
            f"no catalogue event {event_type!r}",
            [Problem("event", f"one of: {', '.join(CATALOGUE)}", event_type)],
        )
    try:
        return preview(ctx.service, event_type)
    except jinja2.TemplateError as exc:
        raise ApiError(
            422,
            "rendering failed",
            [Problem("[rendering]", f"fix the template: {template_problem(exc)}")],
        ) from None


def _by_field(problems: tuple[Problem, ...], name: str, known: set[str]) -> dict[str, Problem]:
    """Each problem under the form field it names (``settings.port``,
    ``channels.NAME.port``, ``port`` or ``to[1]`` are all the field ``port``/``to``)."""
    found: dict[str, Problem] = {}
    for problem in problems:
        field = problem.field or ""
        for prefix in ("settings.", f"channels.{name}.", "channels."):
            if field.startswith(prefix):
                field = field[len(prefix) :]
                break
        key = field.split(".")[0].split("[")[0]
        if key in known or key == "name":
            found.setdefault(key, problem)
    return found


def base(request: Request) -> str:
    """The console's own path (``/console``, or under a proxy's prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/") or "/console"


def when(ts: float | None) -> str:
    """A stored time as the pages show it (UTC)."""
    return "" if ts is None else iso(ts).replace("T", " ").replace("+00:00", " UTC")


def _cookie(reply: Response, request: Request, name: str, value: str) -> None:
    """HttpOnly, SameSite=Strict, the console's path only; Secure when the request came
    over https (directly, or through a proxy on loopback saying so in
    X-Forwarded-Proto, which uvicorn applies)."""
    reply.set_cookie(
        name,
        value,
        path=base(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


__all__ = ["Console", "FormField"]
