"""``dbnotify serve``: the HTTP API and the web console, with the outbox's worker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dbnotify.cli._common import EXIT_USAGE, config_option, load

if TYPE_CHECKING:
    from dbnotify.config.model import Config

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@click.command()
@config_option
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="where to listen (default: [serve] listen, else 127.0.0.1:8025); port 0 picks a "
    "free one, printed on start",
)
def serve(config_path: Path, listen: str | None) -> None:
    """Serve the HTTP API (/v1, /openapi.json) and the web console (/console).

    Needs at least one token in [serve.tokens]. With [outbox], events are committed
    there and delivered by a worker in this process.
    """
    import asyncio

    import attrs

    from dbnotify.config.model import ServeSettings

    config = load(config_path)
    settings = config.serve or ServeSettings()
    if listen is not None:
        try:
            settings = attrs.evolve(settings, listen=listen)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--listen") from None
    if not settings.tokens:
        click.echo(
            f"error: {config_path}: [serve.tokens] has no token, so nothing could use the "
            "API; add one, e.g.\n\n"
            "  [serve.tokens.dbackup]\n"
            '  secret = { env = "DBNOTIFY_TOKEN_DBACKUP" }\n'
            '  scopes = ["send"]',
            err=True,
        )
        sys.exit(EXIT_USAGE)
    if settings.host not in LOOPBACK:
        click.echo(
            f"warning: listening on {settings.host}, not loopback: put a reverse proxy with "
            "TLS in front, or tokens cross the network in clear",
            err=True,
        )
    config = attrs.evolve(config, serve=settings)
    try:
        asyncio.run(_serve(config_path, config))
    except KeyboardInterrupt:  # uvicorn stopped cleanly, then raised Ctrl-C again
        click.echo("dbnotify serve: stopped", err=True)


async def _serve(config_path: Path, config: Config) -> None:
    import asyncio

    import uvicorn

    from dbnotify.serve.app import create_app

    assert config.serve is not None
    app = create_app(config_path, config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.serve.host,
            port=config.serve.port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
            # Behind a TLS reverse proxy, the request's scheme (https) and client
            # address come from X-Forwarded-Proto and -For, believed from loopback only
            # (a client cannot forge them); a proxy on another host is named in the
            # environment's FORWARDED_ALLOW_IPS, which uvicorn reads when this is None.
            proxy_headers=True,
            forwarded_allow_ips=None,
        )
    )

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        for listener in server.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                click.echo(f"dbnotify serving on http://{shown}:{port} (console at /console)")
        sys.stdout.flush()

    watcher = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        watcher.cancel()
