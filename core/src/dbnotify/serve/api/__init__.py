"""The ``/v1`` API, one module per resource; each holds a :class:`~dbnotify.serve.endpoints.Routes`
named ``routes`` that :mod:`dbnotify.serve.app` lists."""
