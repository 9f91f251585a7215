"""Jinja2 rendering shared by all channels.

Two kinds of environment: one autoescaping for HTML, one plain for subject and text.
Event data is always text, never markup: the HTML environments escape it, and a subject
never keeps a newline or control character. Operators may override any default template
by putting a file of the same name in ``rendering.templates_dir``; those templates (and
every template string an operator writes) run in the sandbox, under limits, and can only
load templates from that folder or ours. dbnotify's own templates are trusted code and
render outside it. Templates are compiled once, when the renderer is made.
"""

from __future__ import annotations

import contextvars
import json
import os
import posixpath
import re
import stat
import textwrap
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from dbnotify.config.fields import regular_file_problem
from dbnotify.config.model import RenderingSettings
from dbnotify.errors import ConfigError, ConfigIssue
from dbnotify.events import Notification, Severity
from dbnotify.rendering.inlining import inliner, preinline
from dbnotify.rendering.limits import BoundedSandbox, output_limit, size_of, time_limit

SEVERITY_COLORS: dict[Severity, str] = {
    Severity.SUCCESS: "#16a34a",
    Severity.FAILURE: "#dc2626",
    Severity.INFO: "#2563eb",
    Severity.WARNING: "#d97706",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_INDENT = re.compile(r"^[ \t]+")
_BR = markupsafe.Markup("<br>\n")
_NBSP = markupsafe.Markup("&nbsp;")
_CUT_MARK = '<span class="cut">'
"""What :func:`html_lines` writes before the note on a value it cut (a class the
stylesheet styles: a rendering with it is inlined as a whole)."""

HTML_VALUE_LIMIT = 20_000
"""Characters of one value (or the message) the HTML shows; the rest is cut with a note.
Gmail clips an HTML body past about 102 KB and hides the rest behind a link: a long
error must not push the fields and footer out. The text part keeps every character; the
HTML keeps enough of it that SpamAssassin does not find the parts too different
(MPART_ALT_DIFF_COUNT, 2.8 points, when the text has over 3 times the HTML's words)."""
HTML_FIELD_ROWS = 25
"""Fields the HTML table shows; the rest is counted in a last row ("and 175 more"), which
says that the text part lists every one. A group of 200 failures stays a readable card."""

HTML_TOTAL_LIMIT = 70_000
"""Bytes of markup all the values of one HTML rendering share (the message and every
field, in order): each under ``HTML_VALUE_LIMIT``, ten 15 KB values would still make
150 KB. Once it is spent, each later value shows its first ``HTML_VALUE_FLOOR``
characters and the note. 70 KB leaves the template, its inlined CSS and a row per field
room under Gmail's ~102 KB."""
HTML_VALUE_FLOOR = 300
"""Characters a value always shows, the budget spent or not: a short one is never cut,
a long one still shows how it starts."""

_html_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "html_budget", default=None
)
"""Bytes of markup left to the values of the HTML being rendered (a one-item list, spent
by :func:`html_lines`); ``None`` outside :meth:`Renderer.html`."""


class TemplateNotAFile(jinja2.TemplateError):
    """A template's name in ``rendering.templates_dir`` is a FIFO, socket or device."""


def not_a_file(name: str, problem: str) -> str:
    """``template file email.html is a FIFO (named pipe), not a regular file; ...``."""
    return f"template file {name} {problem}; replace it with a template file, or remove it"


class OperatorLoader(jinja2.FileSystemLoader):
    """The operator's folder, where only a regular file is a template.

    Jinja2's loader skips a FIFO silently (its default of the same name is used instead,
    the override lost) and would wait forever reading one that appears after its check.
    Here a FIFO, socket or device of the name is an error naming the file, and the file
    is opened without waiting and checked as opened.
    """

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = jinja2.loaders.split_template_path(template)
        for folder in self.searchpath:
            filename = posixpath.join(folder, *pieces)
            if os.path.lexists(filename):
                break
        else:
            return super().get_source(environment, template)  # its TemplateNotFound
        if os.path.isdir(filename):
            raise jinja2.TemplateNotFound(template)  # as Jinja2 does: the next loader's
        if problem := regular_file_problem(filename):  # before opening: not a device
            raise TemplateNotAFile(not_a_file(template, problem))
        try:
            fd = os.open(filename, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return super().get_source(environment, template)  # gone, or its own error
        with os.fdopen(fd, encoding=self.encoding) as file:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode):  # replaced since the check
                raise TemplateNotAFile(not_a_file(template, "is not a regular file"))
            os.set_blocking(fd, True)
            contents = file.read()
        mtime = found.st_mtime

        def uptodate() -> bool:
            try:
                return os.path.getmtime(filename) == mtime
            except OSError:
                return False

        return contents, os.path.normpath(filename), uptodate


def files_not_templates(folder: str | os.PathLike[str]) -> list[str]:
    """What is wrong with each entry of ``folder`` (and its subfolders) that is named like
    a file but is not one: ``template file email.html is a FIFO (named pipe), ...``.

    For ``validate``: any of them may be loaded by name (an override, an include), and
    :class:`OperatorLoader` would refuse it only when it is first used.
    """
    found: list[str] = []
    for top, _dirs, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(top, name)
            if problem := regular_file_problem(path):
                found.append(not_a_file(Path(path).relative_to(folder).as_posix(), problem))
    return sorted(found)


def template_problem(exc: jinja2.TemplateError) -> str:
    """``template email.html line 3: unexpected '}'`` for an operator to fix."""
    if isinstance(exc, TemplateNotAFile):
        return str(exc)
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"template {exc.name or exc.filename or '?'} line {exc.lineno}: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return (
            f"template {exc.name!r} not found: templates load by name, from "
            "rendering.templates_dir or dbnotify's own (no paths, no ..)"
        )
    return f"template error: {exc.message or exc}"


def _json_value(value: Any) -> Any:
    if isinstance(value, markupsafe.Markup):  # already JSON: the output of | tojson
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)[1:-1]  # the inside of a JSON string
    if isinstance(value, jinja2.runtime.Undefined):
        return value
    return json.dumps(value, default=str)


def _indented(line: str) -> markupsafe.Markup:
    """A line escaped, its indentation as no-break spaces (tabs of 4): HTML would
    collapse it."""
    indent = _INDENT.match(line)
    if indent is None:
        return markupsafe.escape(line)
    width = len(indent.group().expandtabs(4))
    return _NBSP * width + markupsafe.escape(line[indent.end() :])


def html_lines(value: str, limit: int = HTML_VALUE_LIMIT) -> markupsafe.Markup:
    """Event text as HTML: escaped first, then its lines joined with ``<br>``.

    Outlook for Windows, Windows Mail and Samsung Email ignore ``white-space: pre-wrap``:
    only ``<br>`` keeps a traceback's lines apart (and ``&nbsp;`` its indentation).
    Nothing from the event becomes markup. Past ``limit`` characters the text is cut,
    with a note that says where the whole of it is; sooner if its markup would pass
    twice that (text of ``<`` or of deep indentation grows four to six times). In an
    HTML rendering (:meth:`Renderer.html`), all values share ``HTML_TOTAL_LIMIT`` bytes
    of markup, spent in order: a value past what is left is cut there, with the same
    note (though never below ``HTML_VALUE_FLOOR`` characters).
    """
    text = str(value)
    left = _html_budget.get()
    budget = 2 * limit
    if left is not None and left[0] < budget:
        budget = max(left[0], HTML_VALUE_FLOOR)
        limit = min(limit, budget)
    html = _html_lines(text, limit)
    while (size := _markup_size(html)) > budget and limit > HTML_VALUE_FLOOR:
        limit = max(limit * budget // size * 9 // 10, HTML_VALUE_FLOOR)
        html = _html_lines(text, limit)
    if left is not None:
        left[0] -= size
    return html


def _markup_size(html: str) -> int:
    """Its size in bytes once written out (a no-break space of the event's own may
    become ``&nbsp;``)."""
    return len(html.encode()) + 4 * html.count("\u00a0")


def _html_lines(text: str, limit: int) -> markupsafe.Markup:
    cut = len(text) - limit if len(text) > limit else 0
    if cut:
        text = text[:limit]
    lines = _LINE_BREAK.split(text)
    if len(lines) == 1 and not text.startswith((" ", "\t")):  # most values: one plain line
        html = markupsafe.escape(text)
    else:
        html = _BR.join(_indented(line) for line in lines)
    if cut:
        html += markupsafe.Markup(
            '&hellip;<br>\n<span class="cut">({:,} more characters: the plain-text part'
            " of this email has the whole text)</span>"
        ).format(cut)
    return html


def wrap(value: str, indent: int = 0, width: int = 0) -> str:
    """Plain text wrapped at ``width`` columns, continuation lines indented by ``indent``;
    with ``width`` 0 (chat and push channels, which wrap for themselves), as it is.

    For a value written after its label (``Error:  ...``): its first line follows the
    label, every other line starts under the first, not at column 0. A line's own
    indentation is kept on its continuations; words are never broken (a long URL or
    path stays whole).
    """
    if width <= 0:
        return str(value)
    room = max(width - indent, 30)
    pad = " " * indent
    out: list[str] = []
    for line in _LINE_BREAK.split(str(value)):
        if len(line) <= room:  # most lines: what textwrap would make of them, without it
            out.append(line.rstrip())
            continue
        own = _INDENT.match(line)
        wrapped = textwrap.wrap(
            line,
            room,
            subsequent_indent=own.group() if own else "",
            expand_tabs=False,
            replace_whitespace=False,
            break_long_words=False,
            break_on_hyphens=False,
        )
        out += wrapped or [line.strip()]
    return ("\n" + pad).join(out).replace(pad + "\n", "\n")


def summary(message: str, fields: list[tuple[str, str]]) -> str:
    """The message without a field value it ends with, which the fields table shows.

    ``Backup job 'x' failed. Error: <error>`` becomes ``Backup job 'x' failed.``: the
    error is printed once, in its field, not twice (a long one twice would double the
    HTML's size). Only a value introduced by a colon is dropped.
    """
    for label, value in sorted(fields, key=lambda field: -len(field[1])):
        if not value or not message.endswith(value):
            continue
        head = message[: -len(value)].rstrip()
        if not head.endswith(":"):
            continue
        head = head[:-1].rstrip()
        if head.endswith(label):
            rest = head[: -len(label)]
            if not rest.strip():
                continue  # "Error: x" is the message itself
            if rest[-1].isspace():
                head = rest.rstrip()
        if head:
            return head if head.endswith((".", "!", "?")) else head + "."
    return message


def label_width(notification: Notification) -> int:
    """The longest field label's length: ``message.txt`` pads the labels to it. Given to
    the template, as ``label_width``, because Jinja2's ``max`` filter took a third of the
    text part's time; without it the template works it out itself."""
    return max((len(field.label) for field in notification.fields), default=0)


def one_line(text: str) -> str:
    """Collapse whitespace and drop control characters: the text fits in one header."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _flat(template: jinja2.Template) -> jinja2.Template:
    """``template`` with its globals in one dict: Jinja2 keeps them as a ChainMap of the
    template's and the environment's, which each rendering copies key by key, twice (a
    tenth of the time of a short template). Our environments' globals never change."""
    template.globals = dict(template.globals)
    return template


_OWN = jinja2.PackageLoader("dbnotify.rendering", "templates")
_OWN_FOLDER = Path(__file__).parent / "templates"


class Renderer:
    """Renders a :class:`Notification` as subject, text and HTML (and any named template)."""

    def __init__(self, settings: RenderingSettings | None = None) -> None:
        self.settings = settings or RenderingSettings()
        self._tz = zoneinfo.ZoneInfo(self.settings.timezone)
        loaders: list[jinja2.BaseLoader] = []
        if self.settings.templates_dir:
            folder = Path(self.settings.templates_dir).expanduser()
            loaders.append(OperatorLoader(folder))
        loaders.append(_OWN)
        loader = jinja2.ChoiceLoader(loaders)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "auto_reload": False,
            "trim_blocks": True,
            "lstrip_blocks": True,
        }
        self._html = BoundedSandbox(autoescape=True, **common)
        self._text = BoundedSandbox(autoescape=False, **common)
        self._json = BoundedSandbox(autoescape=False, finalize=_json_value, **common)
        # dbnotify's own templates are trusted code: outside the sandbox, whose checks on
        # every attribute and call cost a fifth of their rendering (values are data either
        # way: the HTML's are escaped all the same)
        ours = {**common, "loader": _OWN}
        self._own_html = jinja2.Environment(autoescape=True, **ours)
        self._own_text = jinja2.Environment(autoescape=False, **ours)  # noqa: S701 - plain text
        for env in (self._html, self._own_html):
            env.filters.update(lines=html_lines, summary=summary)
        for env in (self._text, self._own_text):
            env.filters["wrap"] = wrap
        self._inliner = inliner()
        self._named: dict[tuple[str, bool], jinja2.Template] = {}
        """Templates by name and kind, the operator's or ours (never reloaded)."""
        self._last: tuple[Notification, dict[str, Any]] | None = None
        """The last notification's context, for its next rendering (see :meth:`context`)."""
        try:
            self._subject_t = self._template("subject.txt", html=False)
            self._text_t = self._template("message.txt", html=False)
            self._html_t = self._template("email.html", html=True)
        except jinja2.TemplateError as exc:
            raise ConfigError(
                [ConfigIssue("rendering.templates_dir", template_problem(exc))]
            ) from None
        self._html_inlined = self._preinlined()
        """dbnotify's own email.html with its CSS already inlined (``None`` when the
        operator's is used: that one is inlined on each rendering)."""

    def _template(self, name: str, *, html: bool) -> jinja2.Template:
        """The operator's template of this name (sandboxed), else ours (trusted)."""
        found = self._named.get((name, html))
        if found is None:
            own = self._own_html if html else self._own_text
            if self.settings.templates_dir:  # the operator's if there is one: sandboxed
                found = (self._html if html else self._text).get_template(name)
                if found.filename is not None and Path(found.filename).parent == _OWN_FOLDER:
                    found = own.get_template(name)
            else:  # not compiled in the sandbox too, only to find it is ours
                found = own.get_template(name)
            self._named[(name, html)] = _flat(found)
        return found

    def _preinlined(self) -> jinja2.Template | None:
        if self._html_t.environment is not self._own_html:
            return None
        source, _, _ = _OWN.get_source(self._own_html, "email.html")
        inlined = preinline(source, self._inliner)
        return _flat(self._own_html.from_string(inlined)) if inlined is not None else None

    def context(self, notification: Notification) -> dict[str, Any]:
        """What templates see. ``fields`` is a list of ``(label, value)`` pairs.

        A message renders its subject, text and HTML from the same notification: the
        context is made once for it (a notification is frozen) and copied each time."""
        last = self._last
        if last is not None and last[0] is notification:
            return {**last[1], "fields": list(last[1]["fields"])}
        local = notification.timestamp.astimezone(self._tz)
        fields = [(f.label, f.value) for f in notification.fields]
        context = {
            "n": notification,
            "event_type": notification.event_type,
            "severity": notification.severity.value,
            "color": SEVERITY_COLORS[notification.severity],
            "title": notification.title,
            "message": notification.message,
            "fields": fields,
            "job_name": notification.job_name,
            "timestamp": local.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "timestamp_iso": local.isoformat(),
            "app_name": self.settings.app_name,
            "subject_prefix": self.settings.subject_prefix,
        }
        self._last = (notification, context)
        return {**context, "fields": list(fields)}

    def subject(self, notification: Notification) -> str:
        """``[DBackup] Backup Failed: nightly-pg``: one line, whatever the data holds."""
        return one_line(self._run(self._subject_t, self.context(notification)))

    def text(self, notification: Notification) -> str:
        """Plain text with the title, the message and every field.

        Lines are not wrapped: chat and push channels wrap for themselves. An email's
        text part is rendered with ``text_width`` (see :func:`email_text`)."""
        context = self.context(notification)
        context["label_width"] = label_width(notification)
        return self._run(self._text_t, context).strip() + "\n"

    def html(self, notification: Notification) -> str:
        """A full HTML document, table layout, CSS inlined for mail clients. Its values
        share ``HTML_TOTAL_LIMIT`` (see :func:`html_lines`)."""
        context = {**self.context(notification), "field_rows": HTML_FIELD_ROWS}
        if self._html_inlined is not None:
            html = self._html_run(self._html_inlined, context)
            if _CUT_MARK not in html:  # a cut value's note has a class of the stylesheet
                return html
        return self._inliner.inline(self._html_run(self._html_t, context))

    def _html_run(self, template: jinja2.Template, context: dict[str, Any]) -> str:
        budget = _html_budget.set([HTML_TOTAL_LIMIT])
        try:
            return self._run(template, context)
        finally:
            _html_budget.reset(budget)

    def render(
        self, template: str, notification: Notification, *, html: bool = False, **extra: Any
    ) -> str:
        """Render a template by file name: an operator's in ``rendering.templates_dir``,
        else one of dbnotify's own. A template a plugin ships is not found by name: pass
        its text to :meth:`render_string` or :meth:`render_json`."""
        context = {**self.context(notification), **extra}
        return self._run(self._template(template, html=html), context)

    def render_json(self, source: str, notification: Notification, **extra: Any) -> str:
        """Render an operator's JSON payload template: every value is JSON-escaped.

        ``{"text": "{{ message }}"}`` stays valid JSON whatever the message holds (quotes,
        newlines, backslashes): strings are escaped as JSON string content, other values
        written as JSON (``{{ fields | tojson }}`` also works).
        """
        context = {**self.context(notification), **extra}
        return self._run(self._json.from_string(source), context)

    def render_string(self, source: str, notification: Notification, **extra: Any) -> str:
        """Render an operator-supplied template string (e.g. a webhook payload) sandboxed."""
        context = {**self.context(notification), **extra}
        return self._run(self._text.from_string(source), context)

    def _run(self, template: jinja2.Template, context: dict[str, Any]) -> str:
        """Render; an operator's template under :func:`~dbnotify.rendering.limits.time_limit`."""
        if template.environment is self._own_text or template.environment is self._own_html:
            return template.render(context)
        given = size_of([v for k, v in context.items() if k != "n"])
        with output_limit(given), time_limit():
            return template.render(context)
