"""``dbnotify serve``: the HTTP API and the web console, for hosts in any language.

An ASGI application on Starlette, served by uvicorn. Starlette because it is small and
has no model layer of its own: requests and replies are the project's attrs classes,
read and written with cattrs, and the OpenAPI document is drawn from those classes by
the same code that draws ``dbnotify schema`` (:mod:`dbnotify.schema`).

Modules, lowest first: :mod:`.problems` (errors as RFC 9457 JSON), :mod:`.bodies`
(reading and writing JSON), :mod:`.auth` (tokens and scopes), :mod:`.endpoints` (the
route table each API module fills), :mod:`.service` (what a running server holds), the
API modules in :mod:`.api`, :mod:`.console`, then :mod:`.app` which puts them together.
"""
