"""The request body: the default JSON object, or the operator's payload template.

A template for a JSON content type is rendered with :meth:`Renderer.render_json`, which
writes every value JSON-escaped (``"{{ message }}"`` stays valid JSON whatever the message
holds), and the result must parse as JSON. Any other content type is rendered as plain
text with :meth:`Renderer.render_string`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import jinja2

from dbnotify.channel import Field, Notification, Renderer, Severity

EXTRA_VARIABLES = ("notification_id", "subject", "text")
"""Variables a payload template sees besides the renderer's context."""


class PayloadError(Exception):
    """The body could not be made: a template error, or JSON that does not parse."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def default_body(notification: Notification, renderer: Renderer) -> dict[str, Any]:
    """What the endpoint receives without a payload template (JSON content types)."""
    context = renderer.context(notification)
    return {
        "notification_id": notification.id,
        "event_type": context["event_type"],
        "severity": context["severity"],
        "title": context["title"],
        "message": context["message"],
        "fields": [{"label": label, "value": value} for label, value in context["fields"]],
        "timestamp": context["timestamp_iso"],
    }


def _extra(notification: Notification, renderer: Renderer) -> dict[str, Any]:
    return {
        "notification_id": notification.id,
        "subject": renderer.subject(notification),
        "text": renderer.text(notification),
    }


def json_problem(text: str) -> str | None:
    """Why ``text`` is not one JSON document, with where it went wrong."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        start = max(0, exc.pos - 20)
        near = text[start : exc.pos + 20]
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}, near {near!r}"
    except ValueError as exc:
        return str(exc)
    return None


def _template_error(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        names = sorted({*_sample_renderer().context(SAMPLE), *EXTRA_VARIABLES})
        return f"{exc.message} (the template can use: {', '.join(names)})"
    if isinstance(exc, jinja2.TemplateError):
        return str(exc.message or exc)
    return f"{type(exc).__name__}: {exc}"


def _render(source: str, notification: Notification, renderer: Renderer, *, as_json: bool) -> str:
    extra = _extra(notification, renderer)
    if as_json:
        return renderer.render_json(source, notification, **extra)
    return renderer.render_string(source, notification, **extra)


def render_template(
    source: str, notification: Notification, renderer: Renderer, *, as_json: bool
) -> str:
    """The template's text; raises :class:`PayloadError` for whatever goes wrong."""
    try:
        text = _render(source, notification, renderer, as_json=as_json)
    except Exception as exc:  # noqa: BLE001 - an operator's template: reported, not raised
        raise PayloadError(
            f"the payload template failed: {_template_error(exc)}",
            "fix the channel's payload template; `dbnotify test` renders it without sending",
        ) from None
    if as_json:
        problem = json_problem(text)
        if problem:
            raise PayloadError(
                f"the payload template did not render valid JSON: {problem}",
                JSON_HINT,
            )
    return text


JSON_HINT = (
    'write string values inside quotes ("{{ message }}": they are inserted JSON-escaped), '
    "and other values bare or with | tojson"
)


def body(
    template: str | None, notification: Notification, renderer: Renderer, *, as_json: bool
) -> bytes:
    """The request body for one notification (UTF-8)."""
    if template is not None:
        return render_template(template, notification, renderer, as_json=as_json).encode()
    if as_json:
        return json.dumps(default_body(notification, renderer), ensure_ascii=False).encode()
    return renderer.text(notification).encode()


# --- checking a template when the configuration is loaded -----------------------------

SAMPLE = Notification(
    id="0123456789abcdef0123456789abcdef",
    event_type="backup_failure",
    severity=Severity.FAILURE,
    title="Backup Failed",
    message="Backup job 'nightly \"pg\"' failed.\nError: cannot write C:\\dumps\\pg.sql",
    fields=(Field("Job", 'nightly "pg"'), Field("Error", "cannot write C:\\dumps\\pg.sql")),
    timestamp=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    job_name='nightly "pg"',
)
"""A notification whose text holds quotes, a newline and backslashes."""


@functools.cache
def _sample_renderer() -> Renderer:
    return Renderer()


def template_problem(source: str, *, as_json: bool) -> str | None:
    """What is wrong with a payload template, found by rendering :data:`SAMPLE` with it.

    Catches syntax errors, unknown variables and (for JSON) text that does not parse,
    when the configuration is loaded rather than at the first failed backup.
    """
    try:
        text = _render(source, SAMPLE, _sample_renderer(), as_json=as_json)
    except jinja2.TemplateNotFound:
        return None  # an include from rendering.templates_dir: checked when it is sent
    except jinja2.TemplateSyntaxError as exc:
        return _template_error(exc)
    except Exception as exc:  # noqa: BLE001 - reported as a configuration error
        return f"the template failed on a sample notification: {_template_error(exc)}"
    if as_json:
        problem = json_problem(text)
        if problem:
            return f"does not render valid JSON for a sample notification: {problem}; {JSON_HINT}"
    return None
