"""The shared renderer: subject, text and HTML as mail clients and people see them."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.exceptions import SecurityError
from markupsafe import escape

from dbnotify import Event, load_config
from dbnotify.config.model import RenderingSettings
from dbnotify.errors import ConfigError
from dbnotify.events import Notification, Severity, to_notification
from dbnotify.rendering import SEVERITY_COLORS, Renderer, template_problem
from dbnotify.rendering.renderer import TemplateNotAFile

WHEN = dt.datetime(2024, 3, 1, 2, 30, 5, tzinfo=dt.UTC)
XSS = "<img src=x onerror=alert(1)>"


def note(
    event_type: str = "backup_failure", data: dict[str, Any] | None = None, **kwargs: Any
) -> Notification:
    if data is None:
        data = {"job_name": "nightly-pg", "error": "disk full"}
    return to_notification(Event(event_type, data, timestamp=WHEN, **kwargs))


def overrides(tmp_path: Path, **templates: str) -> RenderingSettings:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, source in templates.items():
        (folder / name.replace("_", ".")).write_text(source, encoding="utf-8")
    return RenderingSettings(templates_dir=str(folder))


# --- subject ---------------------------------------------------------------------------


def test_subject_names_the_job() -> None:
    assert Renderer().subject(note()) == "[DBackup] Backup Failed: nightly-pg"


def test_subject_without_a_job() -> None:
    assert Renderer().subject(note("restore_complete", {})) == "[DBackup] Restore Completed"
    assert Renderer().subject(note("test", {})) == "[DBackup] Test Notification"


def test_subject_prefix_is_configurable() -> None:
    renderer = Renderer(RenderingSettings(subject_prefix="[Acme Backups]"))
    assert renderer.subject(note()) == "[Acme Backups] Backup Failed: nightly-pg"


@pytest.mark.parametrize(
    "hostile",
    [
        "nightly\r\nBcc: evil@attacker.example",
        "nightly\nBcc: evil@attacker.example",
        "nightly\rBcc: evil@attacker.example",
        "=?UTF-8?Q?=0A?=Bcc: evil@attacker.example",
        "nightly\x00\x0b\x0c\x1b[31m",
        "nightly\u2028Bcc: x\u2029\x85",
    ],
)
def test_subject_is_always_one_line(hostile: str) -> None:
    renderer = Renderer()
    for notification in (
        note(data={"job_name": hostile}),
        note("custom", {"job_name": hostile}, title=hostile),
    ):
        subject = renderer.subject(notification)
        assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029\x85]", subject), repr(subject)
        assert subject.startswith("[DBackup] ")
    assert renderer.subject(note(data={"job_name": "a\r\n\r\n  b"})) == (
        "[DBackup] Backup Failed: a b"
    )


# --- HTML --------------------------------------------------------------------------------


def test_html_is_a_full_document_with_inline_styles() -> None:
    html = Renderer().html(note())
    assert html.startswith("<!DOCTYPE html>")
    assert "<html" in html
    assert "<head>" in html
    assert "<body" in html
    assert html.rstrip().endswith("</html>")
    assert "<style" not in html  # inlined: Gmail and Outlook drop style blocks
    assert 'role="presentation"' in html  # table layout
    assert "display: flex" not in html
    assert 'style="' in html
    assert "<title>Backup Failed</title>" in html
    assert re.search(r"<h1 [^>]*style=", html)
    assert "http" not in html  # nothing remote (no logo, no stylesheet)


@pytest.mark.parametrize(
    ("severity", "color"),
    [
        (Severity.SUCCESS, "#16a34a"),
        (Severity.FAILURE, "#dc2626"),
        (Severity.INFO, "#2563eb"),
        (Severity.WARNING, "#d97706"),
    ],
)
def test_header_bar_has_the_severity_colour(severity: Severity, color: str) -> None:
    assert SEVERITY_COLORS[severity] == color
    html = Renderer().html(note("custom", {}, title="T", severity=severity))
    bar = re.search(r'<td class="bar"[^>]*>', html)
    assert bar is not None
    assert f'bgcolor="{color}"' in bar.group(0)
    assert f"background-color: {color}" in bar.group(0)
    assert f'data-severity="{severity.value}"' in bar.group(0)
    others = set(SEVERITY_COLORS.values()) - {color}
    assert not any(other in html for other in others)


def test_catalogue_events_get_their_colour() -> None:
    renderer = Renderer()
    assert "#16a34a" in renderer.html(note("backup_success", {"job_name": "j"}))
    assert "#dc2626" in renderer.html(note("system_error", {"component": "c", "error": "e"}))
    assert "#2563eb" in renderer.html(note("config_backup", {}))


def test_html_escapes_event_data() -> None:
    notification = note(
        data={
            "job_name": XSS,
            "error": f"{XSS} & <b>bold</b>",
            "details": "<script>alert(2)</script>",
        },
        title=XSS,
    )
    html = Renderer().html(notification)
    assert "<img" not in html
    assert "<script" not in html
    assert "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_html_has_title_message_fields_and_footer() -> None:
    notification = note(
        "backup_success",
        {"job_name": "nightly-pg", "size_bytes": 1610612736, "duration_ms": 150000},
    )
    html = Renderer(RenderingSettings(app_name="Acme Backups")).html(notification)
    assert "Backup Successful</h1>" in html
    assert "Backup job &#39;nightly-pg&#39; completed successfully." in html  # Jinja2's escape
    rows = re.findall(r"<th[^>]*>([^<]*)</th>\s*<td[^>]*>([^<]*)</td>", html)
    assert rows == [("Job", "nightly-pg"), ("Duration", "2m 30s"), ("Size", "1.5 GiB")]
    assert "2024-03-01 02:30:05 UTC · Sent by Acme Backups" in html


def test_html_without_fields_has_no_field_table() -> None:
    html = Renderer().html(note("test", {}))
    assert 'class="fields"' not in html
    assert "This is a test notification." in html


# --- text --------------------------------------------------------------------------------


def test_text_has_title_message_and_every_field() -> None:
    notification = note(
        "user_login",
        {
            "user_name": "alice",
            "email": "alice@example.com",
            "ip_address": "203.0.113.7",
            "user_agent": "Firefox",
        },
    )
    assert Renderer().text(notification) == (
        "User Login\n"
        "==========\n"
        "\n"
        "User 'alice' logged in.\n"
        "\n"
        "User:       alice\n"
        "Email:      alice@example.com\n"
        "IP Address: 203.0.113.7\n"
        "User Agent: Firefox\n"
        "\n"
        "--\n"
        "2024-03-01 02:30:05 UTC · Sent by DBackup\n"
    )


def test_text_is_not_html_escaped() -> None:
    text = Renderer().text(note(data={"job_name": "a&b", "error": XSS}))
    assert XSS in text
    assert "&amp;" not in text
    assert "Job:   a&b" in text


def test_text_without_fields() -> None:
    assert Renderer().text(note("test", {})) == (
        "Test Notification\n=================\n\n"
        "This is a test notification. If you can read it, the channel works.\n\n"
        "--\n2024-03-01 02:30:05 UTC · Sent by DBackup\n"
    )


# --- time zone -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "shown"),
    [
        ("UTC", "2024-03-01 02:30:05 UTC"),
        ("Europe/Berlin", "2024-03-01 03:30:05 CET"),
        ("America/New_York", "2024-02-29 21:30:05 EST"),
        ("Asia/Kolkata", "2024-03-01 08:00:05 IST"),
    ],
)
def test_timezone_setting_changes_the_footer(timezone: str, shown: str) -> None:
    renderer = Renderer(RenderingSettings(timezone=timezone))
    notification = note()
    assert f"{shown} · Sent by DBackup" in renderer.text(notification)
    assert f"{shown} · Sent by DBackup" in renderer.html(notification)


def test_timezone_from_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[rendering]\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    renderer = Renderer(load_config(path).rendering)
    summer = to_notification(Event("test", timestamp=dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.UTC)))
    assert "2024-07-01 14:00:00 CEST" in renderer.text(summer)


# --- operator templates ------------------------------------------------------------------------


def test_override_replaces_one_template_and_keeps_the_others(tmp_path: Path) -> None:
    settings = overrides(
        tmp_path,
        subject_txt="{{ subject_prefix }} {{ severity | upper }}: {{ title }} ({{ event_type }})",
    )
    renderer = Renderer(settings)
    assert renderer.subject(note()) == "[DBackup] FAILURE: Backup Failed (backup_failure)"
    assert renderer.text(note()).startswith("Backup Failed\n=============\n")


def test_override_sees_the_fields(tmp_path: Path) -> None:
    settings = overrides(
        tmp_path,
        **{
            "message_txt": "{{ title }}\n"
            "{% for label, value in fields %}* {{ label }} = {{ value }}\n"
            "{% endfor %}"
        },
    )
    assert Renderer(settings).text(note()) == (
        "Backup Failed\n* Job = nightly-pg\n* Error = disk full\n"
    )


def test_override_html_is_still_escaped(tmp_path: Path) -> None:
    settings = overrides(tmp_path, email_html="<p>{{ message }}</p>")
    html = Renderer(settings).html(note(data={"job_name": "j", "error": XSS}))
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") == 1
    assert "<img" not in html


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ n.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ renderer.__globals__ if renderer is defined else n.__class__.__init__.__globals__ }}",
        "{{ fields.__class__.__base__.__subclasses__() }}",
        "{{ ''.format.__self__.__class__ }}",
    ],
)
def test_sandbox_escape_in_an_override_is_refused(tmp_path: Path, attack: str) -> None:
    renderer = Renderer(overrides(tmp_path, subject_txt=attack))
    with pytest.raises(SecurityError):
        renderer.subject(note())


def test_sandbox_refuses_mutating_the_context(tmp_path: Path) -> None:
    renderer = Renderer(overrides(tmp_path, message_txt="{{ fields.append(('x', 'y')) }}"))
    with pytest.raises(SecurityError):
        renderer.text(note())


def test_sandbox_covers_operator_template_strings() -> None:
    with pytest.raises(SecurityError):
        Renderer().render_string("{{ n.__class__.__init__.__globals__ }}", note())
    assert Renderer().render_string('{"text": {{ title | tojson }}}', note()) == (
        '{"text": "Backup Failed"}'
    )


@pytest.mark.parametrize(
    "path", ["../secret.txt", "/../secret.txt", "./../secret.txt", "templates/../../secret.txt"]
)
def test_override_cannot_include_files_outside_its_folder(tmp_path: Path, path: str) -> None:
    (tmp_path / "secret.txt").write_text("TOP-SECRET-TOKEN", encoding="utf-8")
    renderer = Renderer(overrides(tmp_path, message_txt="{% include '" + path + "' %}"))
    with pytest.raises(jinja2.TemplateNotFound):
        renderer.text(note())


def test_override_cannot_read_an_absolute_path(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN", encoding="utf-8")
    renderer = Renderer(overrides(tmp_path, message_txt="{% include '" + str(secret) + "' %}"))
    with pytest.raises(jinja2.TemplateNotFound) as info:
        renderer.text(note())
    assert template_problem(info.value) == (
        f"template {str(secret)!r} not found: templates load by name, from "
        "rendering.templates_dir or dbnotify's own (no paths, no ..)"
    )


def test_override_may_include_its_own_files(tmp_path: Path) -> None:
    settings = overrides(
        tmp_path,
        footer_txt="-- {{ app_name }}",
        message_txt="{{ message }}\n{% include 'footer.txt' %}",
    )
    assert Renderer(settings).text(note()) == (
        "Backup job 'nightly-pg' failed. Error: disk full\n-- DBackup\n"
    )


def test_broken_override_fails_when_the_renderer_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Renderer(overrides(tmp_path, email_html="{% if %}"))
    assert [str(i) for i in caught.value.issues] == [
        "rendering.templates_dir: template email.html line 1: Expected an expression, "
        "got 'end of statement block'"
    ]


def test_validate_reports_a_broken_override(tmp_path: Path) -> None:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "subject.txt").write_text("{{ title }", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config({"rendering": {"templates_dir": str(folder)}})
    assert [str(i) for i in caught.value.issues] == [
        "rendering.templates_dir: template subject.txt line 1: unexpected '}'"
    ]


@pytest.mark.timeout(20)
def test_a_fifo_made_after_the_renderer_is_refused_when_included(tmp_path: Path) -> None:
    """Not read (a FIFO waits for a writer), not skipped for a default of its name."""
    renderer = Renderer(overrides(tmp_path, message_txt="{% include 'part.txt' %}"))
    os.mkfifo(tmp_path / "templates" / "part.txt")
    with pytest.raises(TemplateNotAFile) as caught:
        renderer.text(note())
    assert template_problem(caught.value) == (
        "template file part.txt is a FIFO (named pipe), not a regular file; replace it "
        "with a template file, or remove it"
    )


@pytest.mark.timeout(20)
def test_a_fifo_override_is_a_configuration_error(tmp_path: Path) -> None:
    folder = tmp_path / "tpl"
    folder.mkdir()
    os.mkfifo(folder / "subject.txt")
    with pytest.raises(ConfigError) as caught:
        Renderer(RenderingSettings(templates_dir=str(folder)))
    assert [str(i) for i in caught.value.issues] == [
        "rendering.templates_dir: template file subject.txt is a FIFO (named pipe), not a "
        "regular file; replace it with a template file, or remove it"
    ]


def test_a_folder_named_like_a_template_is_not_one(tmp_path: Path) -> None:
    """As Jinja2 has it: the default of that name is used."""
    settings = overrides(tmp_path)
    (Path(settings.templates_dir or "") / "subject.txt").mkdir()
    assert Renderer(settings).subject(note()) == "[DBackup] Backup Failed: nightly-pg"


def test_unknown_variable_in_an_override_is_an_error(tmp_path: Path) -> None:
    renderer = Renderer(overrides(tmp_path, subject_txt="{{ tittle }}"))
    with pytest.raises(jinja2.UndefinedError, match="'tittle' is undefined"):
        renderer.subject(note())


def test_templates_are_compiled_once(tmp_path: Path) -> None:
    settings = overrides(tmp_path, subject_txt="first")
    renderer = Renderer(settings)
    (Path(settings.templates_dir or "") / "subject.txt").write_text("second", encoding="utf-8")
    assert renderer.subject(note()) == "first"
    assert Renderer(settings).subject(note()) == "second"


# --- what mail clients keep: line breaks, size ------------------------------------------------

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "dump.py", line 12, in <module>\n'
    "\tdump(<b>db</b>)\r\n"
    "OSError: [Errno 28] No space left on device"
)


def value_cell(html: str, label: str) -> str:
    found = re.search(rf"<th[^>]*>{label}</th>\s*<td[^>]*>(.*?)</td>", html, re.DOTALL)
    assert found, html
    return found.group(1)


def test_line_breaks_in_values_are_br_not_pre_wrap() -> None:
    """Outlook for Windows, Windows Mail and Samsung Email ignore white-space: pre-wrap:
    a traceback keeps its lines (and indentation) only with <br> (and &nbsp;)."""
    html = Renderer().html(note(data={"job_name": "nightly-pg", "error": TRACEBACK}))
    assert "pre-wrap" not in html
    assert value_cell(html, "Error").split("<br>\n") == [
        "Traceback (most recent call last):",
        "&nbsp;&nbsp;File &#34;dump.py&#34;, line 12, in &lt;module&gt;",
        "&nbsp;&nbsp;&nbsp;&nbsp;dump(&lt;b&gt;db&lt;/b&gt;)",
        "OSError: [Errno 28] No space left on device",
    ]
    custom = note("custom", {}, title="T", message="first line\nsecond <i>line</i>")
    assert re.search(
        r"<p[^>]*>first line<br>\nsecond &lt;i&gt;line&lt;/i&gt;</p>", Renderer().html(custom)
    )


@pytest.mark.parametrize(
    ("event_type", "data", "sentence"),
    [
        ("backup_failure", {"job_name": "nightly-pg"}, "Backup job 'nightly-pg' failed."),
        ("restore_failure", {"source_name": "pg"}, "Restore of 'pg' failed."),
        ("system_error", {"component": "scheduler"}, "An error occurred in scheduler."),
    ],
)
def test_the_error_is_shown_once(event_type: str, data: dict[str, str], sentence: str) -> None:
    """The catalogue's message ends with the error the Error field holds: the HTML shows
    it in the field only (the text part, a plain transcript, keeps both)."""
    notification = note(event_type, {**data, "error": TRACEBACK})
    html = Renderer().html(notification)
    assert re.search(rf"<p[^>]*>{re.escape(escape(sentence))}</p>", html), html
    assert html.count("Traceback (most recent call last):") == 1
    assert Renderer().text(notification).count("Traceback (most recent call last):") == 2


def test_a_message_that_is_only_a_value_is_kept() -> None:
    notification = note("custom", {}, title="T", message="Error: x", fields={"Error": "x"})
    assert re.search(r"<p[^>]*>Error: x</p>", Renderer().html(notification))


def test_a_50_kb_error_stays_under_gmails_clip_and_the_text_has_it_all() -> None:
    """Gmail clips HTML past ~102 KB: a long value is cut in the HTML, with a note that
    the text part has it; the text part keeps every character."""
    error = "".join(f"line {i:05d}: " + "x" * 40 + "\n" for i in range(1000))[:50_000]
    notification = note(data={"job_name": "nightly-pg", "error": error})
    html = Renderer().html(notification)
    assert len(html.encode()) < 40_000, len(html.encode())
    cell = value_cell(html, "Error")
    assert cell.startswith("line 00000: ")
    assert "30,000 more characters: the plain-text part of this email has the whole text" in cell
    assert html.rstrip().endswith("</html>")
    assert "Sent by DBackup" in html  # the footer is not lost
    text = Renderer().text(notification)
    assert all(line in text for line in error.splitlines())  # every line, wrapped or not


# --- what spam filters, screen readers and plain-text readers see ------------------------------


def test_no_zero_sized_text() -> None:
    """rspamd scores ``font-size: 0`` ZERO_FONT and MANY_INVISIBLE_PARTS: the bar holds
    its height with a visible-size font, not a zero one."""
    for severity in Severity:
        html = Renderer().html(note("custom", {}, title="T", severity=severity))
        sizes = re.findall(r"font-size:\s*([\d.]+)", html)
        assert sizes, html
        assert min(float(size) for size in sizes) >= 8, sizes


def luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i : i + 2], 16)) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(ink: str, paper: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    light, dark = sorted((luminance(ink), luminance(paper)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_text_colour_meets_wcag_aa_on_the_card() -> None:
    """WCAG AA: 4.5:1 for text. The footer was #9ca3af on white (2.54:1)."""
    assert round(contrast("#9ca3af", "#ffffff"), 2) == 2.54  # the formula, checked
    long_error = "x" * 5000  # the "cut" note, too
    html = Renderer().html(note(data={"job_name": "j", "error": long_error}))
    card = re.search(r'<table class="card"[^>]*background-color:\s*(#[0-9a-f]{6})', html)
    assert card, html
    inside = html[card.start() :]
    inks = set(re.findall(r"(?<![-\w])color:\s*(#[0-9a-f]{6})", inside))
    assert {"#111827", "#374151"} <= inks  # title, message: the check found the text
    footer = re.search(r'class="footer"[^>]*(?<![-\w])color:\s*(#[0-9a-f]{6})', inside)
    assert footer
    assert contrast(footer.group(1), card.group(1)) >= 4.5
    for ink in inks:
        assert contrast(ink, card.group(1)) >= 4.5, (ink, contrast(ink, card.group(1)))


def test_right_to_left_text_takes_its_own_direction() -> None:
    """Hebrew or Arabic values read right to left: each text element has dir="auto"."""
    hebrew = "שגיאה: הדיסק מלא."
    html = Renderer().html(note("custom", {}, title=hebrew, message=hebrew, fields={"שדה": hebrew}))
    assert re.search(rf'<h1 dir="auto"[^>]*>{hebrew}</h1>', html)
    assert re.search(rf'<p class="message" dir="auto"[^>]*>{hebrew}</p>', html)
    assert re.search(
        rf'<th scope="row" dir="auto"[^>]*>שדה</th>\s*<td dir="auto"[^>]*>{hebrew}<', html
    )


def test_text_wraps_long_lines_and_indents_field_values() -> None:
    """Plain-text readers show lines as they are: with ``text_width`` (the email's text
    part) wrapped at 76, a value's continuation lines start under its first line, not at
    column 0; words are never cut."""
    path = "/var/backups/" + "very-long-directory-name/" * 4 + "dump.sql.gz"
    error = (
        "pg_dump: error: connection to server on socket failed: FATAL: the database system "
        f"is shutting down while writing {path}\n  and a second, indented line that is also "
        "rather long, so it wraps under itself"
    )
    notification = note(data={"job_name": "nightly-pg", "error": error})
    text = Renderer().render("message.txt", notification, text_width=76)
    lines = text.splitlines()
    assert all(len(line) <= 76 or path in line for line in lines), lines
    start = lines.index("Error: pg_dump: error: connection to server on socket failed: FATAL: the")
    assert lines[start : start + 5] == [
        "Error: pg_dump: error: connection to server on socket failed: FATAL: the",
        "       database system is shutting down while writing",
        f"       {path}",
        "         and a second, indented line that is also rather long, so it wraps",
        "         under itself",
    ]
    assert " ".join(lines[3:5]).startswith("Backup job 'nightly-pg' failed. Error: pg_dump:")
    # text() is for chat and push channels, which wrap for themselves: not wrapped
    assert f"Error: {error}\n" in Renderer().text(notification)


def test_values_that_grow_when_escaped_stay_under_gmails_clip() -> None:
    """``<`` becomes ``&lt;``, an indentation space ``&nbsp;``: the cut counts the markup,
    so two such 50 KB values still leave the footer inside Gmail's ~102 KB."""
    notification = note(
        data={"job_name": "j", "error": "<>" * 25_000, "details": "        x\n" * 5_000}
    )
    html = Renderer().html(notification)
    assert 50_000 < len(html.encode()) < 100_000, len(html.encode())  # cut, not gutted
    assert html.count("more characters: the plain-text part of this email has the whole") == 2
    assert "Sent by DBackup" in html


def test_all_values_share_one_html_budget_spent_in_order() -> None:
    """Ten 15 KB values, each under the one-value cap, would make 150 KB of HTML: they
    share ``HTML_TOTAL_LIMIT``. The first are whole, the later ones cut with the note
    (showing how they start); a short value after them is whole; each rendering starts
    with the whole budget again."""
    from dbnotify.rendering.renderer import HTML_TOTAL_LIMIT, HTML_VALUE_FLOOR

    logs = {f"Log {n}": f"log {n}: " + "x" * 15_000 for n in range(10)}
    notification = note("custom", {}, title="T", message="m", fields={**logs, "Host": "db1"})
    renderer = Renderer()
    html = renderer.html(notification)
    assert len(html.encode()) < HTML_TOTAL_LIMIT + 20_000, len(html.encode())
    cells = [value_cell(html, label) for label in logs]
    assert cells[0] == logs["Log 0"]
    cut = [cell for cell in cells if "the plain-text part of this email has" in cell]
    assert 0 < len(cut) < 10
    assert cells[-len(cut) :] == cut  # the first whole, the rest cut
    assert all(f"log {n}: x" in cell for n, cell in enumerate(cells))
    assert len(cells[-1]) < HTML_VALUE_FLOOR + 200  # the budget spent: its first characters
    assert value_cell(html, "Host") == "db1"
    assert renderer.html(notification) == html  # a fresh budget every time
    text = renderer.text(notification)
    assert all(f"{label}: {value}" in text for label, value in logs.items())


# --- an operator's template cannot stall delivery or validation ------------------------------

NESTED = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"


def test_a_template_that_loops_too_long_is_stopped_at_its_time_limit() -> None:
    import time

    from dbnotify.rendering.limits import TIME_LIMIT, TemplateTooSlow

    started = time.monotonic()
    with pytest.raises(TemplateTooSlow) as info:
        Renderer().render_string(NESTED, note())
    assert time.monotonic() - started < TIME_LIMIT + 1.5
    assert template_problem(info.value) == (
        "template error: took longer than 2s to render (a loop too large?); simplify it"
    )
    assert Renderer().render_string("{{ title }}", note()) == "Backup Failed"  # tracer gone


def test_an_override_with_a_slow_loop_is_stopped_too(tmp_path: Path) -> None:
    from dbnotify.rendering.limits import TemplateTooSlow

    renderer = Renderer(overrides(tmp_path, subject_txt=NESTED + "{{ title }}"))
    with pytest.raises(TemplateTooSlow):
        renderer.subject(note())


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("{{ 'x' * 1000000000 }}", "a repetition of more than 1000000 characters or items"),
        ("{{ 9 ** 999999 }}", "an exponent above 64 is not allowed in a template"),
    ],
)
def test_a_template_cannot_make_a_huge_value(source: str, refusal: str) -> None:
    with pytest.raises(SecurityError, match=refusal):
        Renderer().render_string(source, note())
    assert Renderer().render_string("{{ 'ab' * 3 }} {{ 2 ** 10 }}", note()) == "ababab 1024"


def _refusal(what: str, added: int, unit: str = "characters") -> str:
    return (
        f"{what} would add {added} {unit} to a value; more than 1000000 at once is not "
        "allowed in a template"
    )


# one C call each, never interrupted by the time limit: refused before it runs
ONE_CALL = [
    ('{{ "x"|center(1000000000) }}', _refusal("center", 999_999_999)),
    ('{{ "x".center(1000000000) }}', _refusal("str.center", 999_999_999)),
    ('{{ "x".ljust(1000000000) }}', _refusal("str.ljust", 999_999_999)),
    ('{{ "x".rjust(1000000000) }}', _refusal("str.rjust", 999_999_999)),
    ('{{ "x".zfill(1000000000) }}', _refusal("str.zfill", 999_999_999)),
    ('{{ "x".encode().center(1000000000) }}', _refusal("bytes.center", 999_999_999)),
    ('{{ "%999999999s"|format(1) }}', _refusal("format", 999_999_999)),
    ('{{ "%999999999s" % 1 }}', _refusal("%", 999_999_999)),
    ('{{ "%*s" % (999999999, "x") }}', _refusal("%", 999_999_999)),
    ('{{ "%.999999999f" % 1.0 }}', _refusal("%", 999_999_999)),
    ('{{ "x"|indent(1000000000, true) }}', _refusal("indent", 2_000_000_000)),
    (
        '{{ ("a " * 1000)|wordwrap(1, wrapstring="y" * 2000) }}',
        _refusal("wordwrap", 999 * 2000),
    ),
    ('{{ ("x" * 1000)|replace("", "y" * 1000000) }}', _refusal("replace", 1001 * 1_000_000)),
    ('{{ ("x" * 1000).replace("", "y" * 1000000) }}', _refusal("str.replace", 1001 * 1_000_000)),
    (
        '{{ (("x" * 1000)|safe).replace("", "y" * 1000000) }}',
        _refusal("Markup.replace", 1001 * 1_000_000),
    ),
    ('{{ ("\t" * 1000).expandtabs(1000000000) }}', _refusal("str.expandtabs", 10**12)),
    ('{{ "{:>999999999}".format(1) }}', _refusal("str.format", 999_999_999)),
    ('{{ "{:>{}}".format(1, 999999999) }}', _refusal("str.format", 999_999_999)),
    ('{{ "{0:>600000}{0:>600000}".format(1) }}', _refusal("str.format", 1_200_000)),
    ('{{ "{x:>999999999}".format_map({"x": 1}) }}', _refusal("str.format", 999_999_999)),
    ('{{ ("y" * 1000000).join(["a"] * 1000) }}', _refusal("str.join", 999_000_000)),
    ('{{ (["a"] * 1000)|join("y" * 1000000) }}', _refusal("join", 999_000_000)),
    ('{{ ("x" * 1000).translate({120: "y" * 1000000}) }}', _refusal("str.translate", 999_999_000)),
    ('{{ [1]|batch(1000000000, "x")|list }}', _refusal("batch", 10**9, "items")),
    ("{{ [[1]]|tojson(1000000000) }}", _refusal("tojson", 4 * 999_999_999)),
    ('{{ ("&" * 300000)|forceescape|forceescape }}', _refusal("forceescape", 1_200_000)),
    ('{{ ("é" * 300000)|urlencode }}', _refusal("urlencode", 1_500_000)),
    ('{{ 1.5|round(1000000000, "floor") }}', "an exponent above 64 is not allowed in a template"),
    (
        "{{ (((9 ** 64) ** 64) ** 64) ** 64 }}",
        _refusal("**", 63 * (((9**64) ** 64) ** 64).bit_length(), "bits"),
    ),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("source", "refusal"), ONE_CALL)
def test_one_call_that_would_make_a_huge_value_is_refused(source: str, refusal: str) -> None:
    with pytest.raises(SecurityError) as caught:
        Renderer().render_string(source, note())
    assert str(caught.value) == refusal
    assert template_problem(caught.value) == f"template error: {refusal}"


UNDER_THE_LIMIT = [
    (
        '{{ "x"|center(5) }}|{{ "x".ljust(3) }}|{{ "x".rjust(3) }}|{{ "7".zfill(3) }}',
        "  x  |x  |  x|007",
    ),
    ('{{ "%5s"|format(1) }}|{{ "%-4d|" % 7 }}{{ "%.2f" % 1.5 }}|{{ 7 % 4 }}', "    1|7   |1.50|3"),
    ('{{ "a\nb"|indent(2, true) }}|{{ "a b c"|wordwrap(3, wrapstring="/") }}', "  a\n  b|a b/c"),
    ('{{ "x"|truncate(1000000000) }}|{{ "abcdef"|truncate(5, true, ".", 0) }}', "x|abcd."),
    (
        '{{ "a-b"|replace("-", "+") }}|{{ "a\tb".expandtabs(2) }}|{{ "{:>4}".format(1) }}',
        "a+b|a b|   1",
    ),
    (
        '{{ "-".join(["a", "b"]) }}|{{ [1, 2]|join(", ") }}|{{ "ab".translate({97: "AA"}) }}',
        "a-b|1, 2|AAb",
    ),
    (
        "{{ [1, 2, 3]|batch(2, 0)|list }}|{{ [1]|tojson(2) }}|{{ 1.55|round(1, 'floor') }}",
        "[[1, 2], [3, 0]]|[\n  1\n]|1.5",
    ),
    (
        '{{ "<&>"|forceescape }}|{{ "a b"|urlencode }}|{{ ("x" * 999999)|center(1000000)|length }}',
        "&lt;&amp;&gt;|a%20b|1000000",
    ),
    ("{{ (9 ** 64) ** 64 > 0 }}|{{ 2 ** 10 * 3 }}", "True|3072"),
]


@pytest.mark.parametrize(("source", "expected"), UNDER_THE_LIMIT)
def test_the_same_calls_under_the_limit_still_work(source: str, expected: str) -> None:
    assert Renderer().render_string(source, note()) == expected


def test_a_large_event_value_is_not_refused_for_its_own_size() -> None:
    """The limit is on what a step adds: a 3 MB error may still be rewritten."""
    big = ("x" * 29 + "\n") * 100_000
    notification = note(data={"job_name": "j", "error": big})
    source = '{{ fields[1][1]|replace("\n", "<br>")|length }}'
    assert Renderer().render_string(source, notification) == str(100_000 * 33)
    assert Renderer().render_string("{{ message }}", notification).endswith(big)


@pytest.mark.timeout(20)
def test_a_loop_printing_large_values_is_stopped_at_the_output_limit() -> None:
    """The output may pass what the template was given by MAX_SIZE characters, no more:
    else a loop of a million characters a turn fills the memory before the time is up."""
    source = '{% for i in range(100000) %}{{ "x" * 1000000 }}{% endfor %}'
    with pytest.raises(SecurityError) as caught:
        Renderer().render_string(source, note())
    found = re.fullmatch(
        r"the template's output passed (\d+) characters \(the (\d+) of the values it was "
        r"given and 1000000 more\), which is not allowed",
        str(caught.value),
    )
    assert found is not None, str(caught.value)
    assert int(found[1]) == int(found[2]) + 1_000_000
    assert 100 < int(found[2]) < 1000  # title, message, fields, timestamps ...
    assert Renderer().render_string('{{ "x" * 1000000 }}', note()) == "x" * 1_000_000


def test_dbnotify_s_own_templates_are_not_watched_for_their_output() -> None:
    """Without an override, a 3 MB error still makes a 3 MB text part."""
    big = "y" * 3_000_000
    text = Renderer().text(note(data={"job_name": "j", "error": big}))
    assert big in text
