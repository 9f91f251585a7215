"""dbnotify's own email.html is inlined once; it must read as if each message were inlined.

The comparison is with the same template given as an operator's override, which is
inlined message by message: the two documents, parsed, must hold the same elements,
attributes (styles included) and text.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import pytest

from dbnotify import Event
from dbnotify.config.model import RenderingSettings
from dbnotify.events import Notification, to_notification
from dbnotify.rendering import Renderer
from dbnotify.rendering.inlining import inliner, preinline

WHEN = dt.datetime(2024, 3, 1, 2, 30, 5, tzinfo=dt.UTC)
TRACEBACK = 'Traceback (most recent call last):\n  File "dump.py", line 12\n    dump(<b>db</b>)\n'


class _Document(HTMLParser):
    """What a browser builds, as a list: tags with their attributes sorted, and text
    with its white space collapsed (where HTML collapses it anyway)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[str, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.items.append(("<", tag, *sorted(f"{k}={v}" for k, v in attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.items.append(("</", tag))

    def handle_data(self, data: str) -> None:
        if text := " ".join(data.split()):
            self.items.append(("text", text))

    def handle_comment(self, data: str) -> None:
        self.items.append(("comment", data))


def document(html: str) -> list[tuple[str, ...]]:
    parsed = _Document()
    parsed.feed(inliner().inline(html))  # serialised as the parser of the inliner does
    return parsed.items


def notifications() -> list[Notification]:
    def of(event_type: str, data: dict[str, str], **kwargs: object) -> Notification:
        return to_notification(Event(event_type, data, timestamp=WHEN, **kwargs))  # type: ignore[arg-type]

    many = {f"Field {i}": f"value {i}" for i in range(30)}  # past the table's 25 rows
    return [
        of("backup_success", {"job_name": "nightly-pg", "duration": "12s", "size": "1 GB"}),
        of("backup_failure", {"job_name": "nightly-pg", "error": TRACEBACK}),
        of("backup_failure", {"job_name": "a'b\"c<&>", "error": "<script>x</script> & co"}),
        of("restore_failure", {"source_name": "pg", "error": "x" * 30_000}),  # cut
        of("system_error", {"component": "scheduler", "error": "  indented\n\ttabbed"}),
        of("user_login", {"user_name": "Ada", "email": "ada@example.com"}),
        of("custom", {}, title="مرحبا", message="نسخة احتياطية", fields={"حالة": "فشل"}),
        of("custom", {}, title="No fields", message="Nothing else to say."),
        of("custom", {}, title="Many", message="Thirty fields.", fields=many),
    ]


@pytest.fixture(scope="module")
def per_message(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    """The same email.html as an operator's override: inlined on every rendering."""
    folder = tmp_path_factory.mktemp("templates")
    own = files("dbnotify.rendering") / "templates" / "email.html"
    with own.open("rb") as source, (folder / "email.html").open("wb") as copy:
        shutil.copyfileobj(source, copy)
    return Renderer(RenderingSettings(templates_dir=str(folder)))


@pytest.mark.parametrize("notification", notifications(), ids=lambda n: n.title)
def test_inlined_once_reads_as_inlined_per_message(
    notification: Notification, per_message: Renderer
) -> None:
    once = Renderer().html(notification)
    assert "<style" not in once
    assert document(once) == document(per_message.html(notification))


def test_the_inlined_template_has_the_styles_on_its_elements() -> None:
    html = Renderer().html(notifications()[0])
    bar = re.search(r'<td class="bar"[^>]*>', html)
    assert bar is not None
    assert 'style="height: 8px;' in bar.group()
    assert "background-color: #16a34a" in bar.group()


def test_an_operators_template_is_inlined_on_each_rendering(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "email.html").write_text(
        "<style>.x { color: #123456; }</style><p class='x'>{{ title }}</p>", encoding="utf-8"
    )
    html = Renderer(RenderingSettings(templates_dir=str(folder))).html(notifications()[0])
    assert '<p class="x" style="color: #123456;">Backup Successful</p>' in html


@pytest.mark.parametrize(
    "source",
    [
        "<td {{ attributes }}>x</td>",  # a tag's attributes: the parser makes one of it
        "<td width={{ width }}>x</td>",  # a value without quotes
        "<p>{{ a }</p>",  # unclosed: Jinja2 says what is wrong, not this
    ],
)
def test_a_template_the_parser_would_change_is_not_preinlined(source: str) -> None:
    assert preinline(source, inliner()) is None


def test_constructs_keep_their_places() -> None:
    source = (
        "<style>td { color: red; }</style><table><tbody>{% for x in y %}"
        '<tr><td a="{{ x }}" b="{{ z }}">{{ x }}</td></tr>{% endfor %}</tbody></table>'
    )
    assert preinline(source, inliner()) == (
        "<html><head></head><body><table><tbody>{% for x in y %}"
        '<tr><td a="{{ x }}" b="{{ z }}" style="color: red;">{{ x }}</td></tr>{% endfor %}'
        "</tbody></table></body></html>"
    )
