"""The default HTML email as a browser draws it: one screenshot per severity.

Each is checked with Pillow (the header bar has the severity's colour and no other, the
page is not blank, the fields table has one ruled row per field, each with a label and
a value) and saved to docs/images/email-<severity>.png for the docs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
from PIL import Image

from dbnotify.events import Event, Severity, to_notification
from dbnotify.rendering import Renderer

if TYPE_CHECKING:  # conftest is not importable at run time (--import-mode=importlib)
    from conftest import Measure, Screenshot

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
MAX_IMAGE_BYTES = 100_000
WINDOW = (700, 560)  # conftest.WINDOW

RGB = tuple[int, int, int]


def rgb(hex_colour: str) -> RGB:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


# What the docs promise, written out here: a changed colour must fail this test.
COLOURS: dict[Severity, RGB] = {
    Severity.SUCCESS: rgb("#16a34a"),
    Severity.FAILURE: rgb("#dc2626"),
    Severity.INFO: rgb("#2563eb"),
    Severity.WARNING: rgb("#d97706"),
}
BORDER = rgb("#e5e7eb")  # the card's border and the rule above each field row
TOLERANCE = 8
INK = 180  # a pixel whose channels are all below this is text, not background

WHEN = dt.datetime(2025, 3, 14, 2, 30, tzinfo=dt.UTC)  # fixed: the images stay the same
EVENTS: dict[Severity, Event] = {
    Severity.SUCCESS: Event(
        "backup_success",
        {
            "job_name": "nightly-pg",
            "source_name": "Production PostgreSQL",
            "duration_ms": 754_000,
            "size_bytes": 2_684_354_560,
        },
        timestamp=WHEN,
    ),
    Severity.FAILURE: Event(
        "backup_failure",
        {"job_name": "nightly-pg", "source_name": "Production PostgreSQL", "error": "disk full"},
        timestamp=WHEN,
    ),
    Severity.INFO: Event(
        "config_backup",
        {
            "file_name": "dbackup-config-2025-03-14.json.enc",
            "size_bytes": 48_128,
            "encrypted": True,
        },
        timestamp=WHEN,
    ),
    Severity.WARNING: Event(
        "disk_low",
        title="Disk Almost Full",
        message="The backup volume /var/backups is 92% full.",
        severity=Severity.WARNING,
        fields={"Volume": "/var/backups", "Used": "92% (460 GB of 500 GB)", "Free": "40 GB"},
        timestamp=WHEN,
    ),
}


def near(pixel: Any, colour: RGB, tolerance: int = TOLERANCE) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def is_ink(pixel: Any) -> bool:
    return max(pixel[:3]) < INK


@attrs.frozen
class Box:
    left: int
    top: int
    right: int  # exclusive
    bottom: int  # exclusive

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


def find_bar(image: Image.Image, colour: RGB) -> Box:
    """The header bar: scan the middle column for the colour, then widen along its row."""
    px = image.load()
    assert px is not None
    width, height = image.size
    x = width // 2
    rows = [y for y in range(height) if near(px[x, y], colour)]
    assert rows, f"no pixel of {colour} in the middle column: no header bar"
    top, bottom = rows[0], rows[-1] + 1
    assert rows == list(range(top, bottom)), f"{colour} appears in several places: {rows}"
    y = (top + bottom) // 2
    left, right = x, x + 1
    while left > 0 and near(px[left - 1, y], colour):
        left -= 1
    while right < width and near(px[right, y], colour):
        right += 1
    return Box(left, top, right, bottom)


def ink_in(image: Image.Image, box: Box) -> int:
    px = image.load()
    assert px is not None
    return sum(
        is_ink(px[x, y]) for y in range(box.top, box.bottom) for x in range(box.left, box.right)
    )


def ruled_rows(image: Image.Image, bar: Box) -> tuple[list[int], int]:
    """Below the bar: the rules above the field rows (inset from the card's sides, so
    white at the card's edge), and the card's bottom border (edge to edge)."""
    px = image.load()
    assert px is not None
    rules: list[int] = []
    card_bottom = bar.bottom
    for y in range(bar.bottom, image.size[1]):
        across = all(near(px[x, y], BORDER, 2) for x in range(bar.left + 48, bar.right - 48, 4))
        if not across:
            continue
        if near(px[bar.left + 4, y], BORDER, 2):
            card_bottom = y
        elif not rules or rules[-1] != y - 1:
            rules.append(y)
    return rules, card_bottom


def save_for_docs(image: Image.Image, card_bottom: int, name: str) -> Path:
    """Cropped below the card; rewritten only when the pixels changed."""
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    target = DOCS_IMAGES / name
    cropped = image.crop((0, 0, image.size[0], min(image.size[1], card_bottom + 25)))
    if target.is_file():
        with Image.open(target) as old:
            if old.convert("RGB").tobytes() == cropped.tobytes() and old.size == cropped.size:
                return target
    cropped.save(target, format="PNG", optimize=True)
    return target


@pytest.mark.parametrize("severity", list(Severity), ids=[s.value for s in Severity])
def test_default_email_as_chromium_draws_it(
    severity: Severity, screenshot: Screenshot, tmp_path: Path
) -> None:
    notification = to_notification(EVENTS[severity])
    assert notification.severity is severity
    png = screenshot(Renderer().html(notification), tmp_path / f"email-{severity.value}.png")
    with Image.open(png) as opened:
        image = opened.convert("RGB")
    assert image.size == WINDOW

    # the header bar: the severity's colour, across the card, at the top
    bar = find_bar(image, COLOURS[severity])
    assert bar.top < 80, bar
    assert 6 <= bar.height <= 12, bar
    assert bar.width >= 560, bar
    counts = image.getcolors(maxcolors=WINDOW[0] * WINDOW[1])
    assert counts is not None
    for other, colour in COLOURS.items():
        if other is not severity:
            stray = sum(n for n, c in counts if near(c, colour))
            assert stray == 0, f"{stray} pixels of the {other.value} colour"
    coloured = sum(n for n, c in counts if near(c, COLOURS[severity]))
    assert coloured == bar.width * bar.height, "the colour is not one solid bar, or not only"

    # not blank: antialiased text in many shades, and plenty of it
    assert len(counts) > 30, f"only {len(counts)} colours: a blank page?"
    assert sum(n for n, c in counts if is_ink(c)) > 1000

    # title and message between the bar and the table, then one rule per field row,
    # each row with a label (left third) and a value (right two thirds)
    rules, card_bottom = ruled_rows(image, bar)
    assert len(rules) == len(notification.fields), (rules, notification.fields)
    content_left, content_right = bar.left + 24, bar.right - 24
    assert ink_in(image, Box(content_left, bar.bottom, content_right, rules[0])) > 500
    split = content_left + (content_right - content_left) // 3
    for index, top in enumerate(rules):
        bottom = rules[index + 1] if index + 1 < len(rules) else top + 30
        label = ink_in(image, Box(content_left, top + 1, split, bottom))
        value = ink_in(image, Box(split + 8, top + 1, content_right, bottom))
        field = notification.fields[index]
        assert label > 20, f"row {index} ({field.label}): no label drawn"
        assert value > 20, f"row {index} ({field.label}): no value drawn"
    assert card_bottom > rules[-1] + 30, "the card ends inside the table (footer missing?)"

    saved = save_for_docs(image, card_bottom, f"email-{severity.value}.png")
    assert saved.stat().st_size < MAX_IMAGE_BYTES


PHONE = (375, 740)  # an iPhone's width in CSS pixels


def test_on_a_phone_the_card_fits_the_screen(
    screenshot: Screenshot, scroll_width: Measure, tmp_path: Path
) -> None:
    """At 375 px nothing is off-screen: no sideways scrolling, the bar and the fields
    table inside the window, every row with its label and value."""
    notification = to_notification(EVENTS[Severity.INFO])  # the longest unbroken value
    html = Renderer().html(notification)
    assert scroll_width(html, PHONE) <= PHONE[0]

    png = screenshot(html, tmp_path / "phone.png", window=PHONE)
    with Image.open(png) as opened:
        image = opened.convert("RGB")
    px = image.load()
    assert px is not None
    bar = find_bar(image, COLOURS[Severity.INFO])
    assert bar.right < PHONE[0], f"the bar runs off the screen: {bar}"
    assert bar.width >= PHONE[0] - 40, bar
    assert near(px[bar.right, bar.bottom + 20], BORDER, 2), "no card border at the right"
    rules, card_bottom = ruled_rows(image, bar)
    assert len(rules) == len(notification.fields), rules
    assert card_bottom > rules[-1] + 30
    left, right = bar.left + 24, bar.right - 24
    split = left + (right - left) // 3
    for index, top in enumerate(rules):
        bottom = rules[index + 1] if index + 1 < len(rules) else top + 30
        assert ink_in(image, Box(left, top + 1, split, bottom)) > 20, f"row {index}: no label"
        assert ink_in(image, Box(split + 8, top + 1, right, bottom)) > 20, f"row {index}: no value"
    save_for_docs(image, card_bottom, "email-phone.png")


def text_rows(image: Image.Image, box: Box) -> int:
    """How many lines of text are drawn in ``box``: bands of rows with ink."""
    px = image.load()
    assert px is not None
    inked = [
        any(is_ink(px[x, y]) for x in range(box.left, box.right))
        for y in range(box.top, box.bottom)
    ]
    return sum(1 for y, ink in enumerate(inked) if ink and (y == 0 or not inked[y - 1]))


def test_a_traceback_keeps_its_lines_where_white_space_is_ignored(
    screenshot: Screenshot, tmp_path: Path
) -> None:
    """Outlook for Windows, Windows Mail and Samsung Email ignore ``white-space``: drawn
    with it forced to ``normal``, a four-line error still shows four lines."""
    error = "Traceback:\n  File dump.py\n    dump()\nOSError: full"
    event = Event("backup_failure", {"job_name": "nightly-pg", "error": error}, timestamp=WHEN)
    notification = to_notification(event)
    outlook = "<style>* { white-space: normal !important; }</style></head>"
    html = Renderer().html(notification).replace("</head>", outlook)
    png = screenshot(html, tmp_path / "outlook.png")
    with Image.open(png) as opened:
        image = opened.convert("RGB")
    bar = find_bar(image, COLOURS[Severity.FAILURE])
    rules, card_bottom = ruled_rows(image, bar)
    assert len(rules) == len(notification.fields) == 2, rules
    left, right = bar.left + 24, bar.right - 24
    split = left + (right - left) // 3
    error_cell = Box(split + 8, rules[1] + 2, right, card_bottom - 40)
    assert text_rows(image, error_cell) == 4


def test_a_groups_email_as_chromium_draws_it(screenshot: Screenshot, tmp_path: Path) -> None:
    """200 failures as one message (``[grouping]``): 25 rows and a row that counts the
    rest, under one red bar; saved for the storms page of the docs."""
    from dbnotify.outbox.grouping import group_notification

    members = [
        to_notification(
            Event(
                "backup_failure",
                {"job_name": f"job-{i:03}", "error": "storage unreachable: no route to host"},
                timestamp=WHEN + dt.timedelta(seconds=i // 20),
            )
        )
        for i in range(200)
    ]
    window = (700, 1600)
    png = screenshot(
        Renderer().html(group_notification(members)), tmp_path / "email-group.png", window
    )
    with Image.open(png) as opened:
        image = opened.convert("RGB")
    bar = find_bar(image, COLOURS[Severity.FAILURE])
    rules, card_bottom = ruled_rows(image, bar)
    assert len(rules) == 26, rules  # 25 members, then "and 175 more"
    assert card_bottom < window[1] - 10, "the card does not fit the window"
    saved = save_for_docs(image, card_bottom, "email-group.png")
    assert saved.stat().st_size < 2 * MAX_IMAGE_BYTES
