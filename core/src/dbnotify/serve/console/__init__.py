"""The web console at ``/console``: server-rendered pages (Jinja2, with its own
autoescaping environment, apart from the notification renderer's) over the same
service as the API; its script and style are files of this package, never a CDN's."""

from __future__ import annotations

from starlette.routing import Mount

from dbnotify.serve.console.pages import Console


def console_mount() -> Mount:
    """The console, for :func:`dbnotify.serve.app.create_app` to mount."""
    return Mount("/console", routes=Console().routes())


__all__ = ["console_mount"]
