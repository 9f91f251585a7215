"""The Discord twin of a grouped email: what Discord receives, drawn as Discord lays it out.

200 failures go through a durable outbox with ``[grouping]`` and the Discord plugin to a
real local HTTP server standing in for the webhook. The JSON it receives is checked
against Discord's limits, then drawn as an embed card in a small static page (dark
theme, the colour bar on the left, inline fields three to a row, the footer) and
screenshotted to docs/images/discord-group.png. The page is an approximation of
Discord's client, not Discord itself: the docs' caption says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from pytest_httpserver import HTTPServer

from dbnotify import Event, Notifier

if TYPE_CHECKING:  # conftest is not importable at run time (--import-mode=importlib)
    from conftest import Screenshot

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
MAX_IMAGE_BYTES = 200_000
WHEN = dt.datetime(2025, 3, 14, 2, 30, tzinfo=dt.UTC)  # as the email's picture
WINDOW = (700, 1200)
RED = (0xDC, 0x26, 0x26)  # the failure colour, as the email's bar
BACKGROUND = (0x31, 0x33, 0x38)  # Discord's dark theme, behind the message
CARD = (0x2B, 0x2D, 0x31)  # the embed's own background

# Discord's limits for one embed (https://discord.com/developers/docs/resources/message)
TITLE_MAX, DESCRIPTION_MAX, FIELDS_MAX, TOTAL_MAX = 256, 4096, 25, 6000
FIELD_NAME_MAX, FIELD_VALUE_MAX, FOOTER_MAX = 256, 1024, 2048


def units(text: str) -> int:
    """Length as Discord counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


async def discord_receives(tmp_path: Path, httpserver: HTTPServer) -> dict[str, Any]:
    """200 ``backup_failure`` events through the outbox, grouped, sent by the worker:
    the one JSON body the webhook gets."""
    httpserver.expect_request("/api/webhooks/1/t", method="POST").respond_with_data("", status=204)
    config = {
        "channels": {
            "ops-discord": {
                "type": "discord",
                "webhook_url": httpserver.url_for("/api/webhooks/1/t"),
                "username": "DBackup",
            }
        },
        "routing": {"channels": ["ops-discord"]},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "grouping": {"default": {"by": ["type"], "wait": "1s", "interval": "5m"}},
    }
    async with Notifier.from_config(config) as notifier:
        for i in range(200):  # all queued before the worker starts: one group
            event = Event(
                "backup_failure",
                {"job_name": f"job-{i:03}", "error": "storage unreachable: no route to host"},
                timestamp=WHEN + dt.timedelta(seconds=i // 20),
            )
            await notifier.notify(event)
        notifier.start()
        for _ in range(300):  # 30 s at most
            if httpserver.log:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # anything more would have come by now
        rows = await notifier.history(limit=1000)
    assert len(httpserver.log) == 1, [r.get_data(as_text=True)[:200] for r, _ in httpserver.log]
    assert len(rows) == 200
    assert {r.status for r in rows} == {"delivered"}
    request, _ = httpserver.log[0]
    body: dict[str, Any] = request.get_json()
    return body


def check_limits(embed: dict[str, Any]) -> None:
    fields = embed["fields"]
    assert len(fields) <= FIELDS_MAX
    assert units(embed["title"]) <= TITLE_MAX
    assert units(embed.get("description", "")) <= DESCRIPTION_MAX
    assert all(units(f["name"]) <= FIELD_NAME_MAX for f in fields)
    assert all(units(f["value"]) <= FIELD_VALUE_MAX for f in fields)
    assert all(f["name"].strip() and f["value"].strip() for f in fields)  # Discord refuses ""
    assert units(embed["footer"]["text"]) <= FOOTER_MAX
    total = units(embed["title"]) + units(embed.get("description", ""))
    total += sum(units(f["name"]) + units(f["value"]) for f in fields)
    total += units(embed["footer"]["text"])
    assert total <= TOTAL_MAX, total


# --- drawing: an approximation of Discord's client (dark theme) -----------------------


def shown(markdown: str) -> str:
    """Discord's Markdown as the client shows it: escapes removed (the plugin escapes event
    text), then HTML-escaped; nothing else in these messages is Markdown."""
    return escape(re.sub(r"\\(.)", r"\1", markdown))


def field_rows(fields: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Discord's layout: inline fields share a row, three at most; any other has its own."""
    rows: list[list[dict[str, Any]]] = []
    for field in fields:
        if field.get("inline") and rows and rows[-1][0].get("inline") and len(rows[-1]) < 3:
            rows[-1].append(field)
        else:
            rows.append([field])
    return rows


def timestamp(iso: str) -> str:
    when = dt.datetime.fromisoformat(iso).astimezone(dt.UTC)
    return when.strftime("%d/%m/%Y %H:%M")


def discord_page(body: dict[str, Any]) -> str:
    """The webhook's message as a static page: the poster's name, then the embed."""
    (embed,) = body["embeds"]
    colour = f"#{embed['color']:06x}"
    cells = []
    for row in field_rows(embed["fields"]):
        span = 12 // len(row)
        cells.extend(
            f'<div class="field" style="grid-column: span {span}">'
            f'<div class="name">{shown(f["name"])}</div>'
            f'<div class="value">{shown(f["value"])}</div></div>'
            for f in row
        )
    description = (
        f'<div class="description">{shown(embed["description"])}</div>'
        if "description" in embed
        else ""
    )
    footer = shown(embed["footer"]["text"]) + " • " + timestamp(embed["timestamp"])
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>
  * {{ box-sizing: border-box; }}
  body {{ margin: 0; background: #313338; color: #dbdee1;
         font: 15px/1.375 "Liberation Sans", Arial, sans-serif; }}
  .message {{ display: flex; padding: 16px 16px 20px 16px; }}
  .avatar {{ width: 40px; height: 40px; border-radius: 50%; background: #5865f2;
            flex: none; margin-right: 16px; }}
  .who {{ font-weight: 600; color: #f2f3f5; }}
  .tag {{ background: #5865f2; color: #fff; font-size: 10px; font-weight: 600;
         border-radius: 3px; padding: 1px 4px; margin-left: 4px; vertical-align: 2px; }}
  .when {{ color: #949ba4; font-size: 12px; margin-left: 6px; }}
  .embed {{ margin-top: 4px; max-width: 516px; background: #2b2d31; border-radius: 4px;
           border-left: 4px solid {colour}; padding: 8px 16px 16px 12px; }}
  .title {{ color: #f2f3f5; font-weight: 600; font-size: 16px; margin-top: 8px; }}
  .description {{ font-size: 14px; margin-top: 8px; white-space: pre-wrap; }}
  .fields {{ display: grid; grid-template-columns: repeat(12, 1fr); gap: 8px;
            margin-top: 8px; font-size: 14px; }}
  .name {{ color: #f2f3f5; font-weight: 600; margin-bottom: 2px; }}
  .value {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
  .footer {{ color: #b5bac1; font-size: 12px; margin-top: 8px; }}
</style></head><body><div class="message" id="message">
  <div class="avatar"></div>
  <div>
    <div><span class="who">{shown(body.get("username", "Webhook"))}</span><span
      class="tag">APP</span><span class="when">{timestamp(embed["timestamp"])}</span></div>
    <div class="embed">
      <div class="title">{shown(embed["title"])}</div>
      {description}
      <div class="fields">{"".join(cells)}</div>
      <div class="footer">{footer}</div>
    </div>
  </div>
</div></body></html>"""


def near(pixel: Any, colour: tuple[int, int, int], tolerance: int = 8) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


async def test_a_groups_discord_message_as_discord_would_show_it(
    screenshot: Screenshot, tmp_path: Path, httpserver: HTTPServer
) -> None:
    body = await discord_receives(tmp_path, httpserver)

    # what Discord receives: one embed, the count in its title, the members as fields
    assert body["username"] == "DBackup"
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    check_limits(embed)
    assert embed["title"] == "200 backups failed"
    assert embed["color"] == 0xDC2626
    assert embed["description"] == "Between 2025-03-14 02:30:00 UTC and 2025-03-14 02:30:09 UTC."
    fields = embed["fields"]
    assert len(fields) == FIELDS_MAX
    members = fields[:-1]
    assert [f["name"] for f in members] == [f"job-{i:03}" for i in range(24)]
    assert members[0]["value"] == "2025-03-14 02:30:00 UTC: storage unreachable: no route to host"
    assert all(f["inline"] for f in members)
    assert fields[-1] == {"name": "…", "value": "176 more not shown", "inline": False}
    assert embed["footer"] == {"text": "Sent by DBackup"}

    # drawn: the colour bar down the card's left side, text beside it, all in the window
    png = screenshot(discord_page(body), tmp_path / "discord-group.png", WINDOW)
    with Image.open(png) as opened:
        image = opened.convert("RGB")
    px = image.load()
    assert px is not None
    width, height = image.size
    reds = [(x, y) for y in range(height) for x in range(width // 3) if near(px[x, y], RED)]
    assert reds, "no colour bar"
    columns = sorted({x for x, _ in reds})
    rows = sorted({y for _, y in reds})
    assert len(columns) <= 5, f"the colour bar is not a thin stripe: columns {columns}"
    top, bottom = rows[0], rows[-1]
    assert bottom - top > 300, (top, bottom)  # as tall as the card: eight rows of fields
    assert bottom < height - 10, "the card does not fit the window"
    right = columns[-1] + 1
    assert near(px[right + 4, (top + bottom) // 2], CARD), "no card beside the bar"
    assert near(px[width - 5, (top + bottom) // 2], BACKGROUND), "the card is wider than Discord's"
    light = sum(
        1
        for y in range(top, bottom)
        for x in range(right, min(width, right + 516))
        if min(px[x, y]) > 150
    )
    assert light > 3000, f"little text in the card ({light} light pixels)"

    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    target = DOCS_IMAGES / "discord-group.png"
    cropped = image.crop((0, 0, width, min(height, bottom + 20)))
    unchanged = False
    if target.is_file():
        with Image.open(target) as old:
            unchanged = old.size == cropped.size and old.convert("RGB").tobytes() == (
                cropped.tobytes()
            )
    if not unchanged:
        cropped.save(target, format="PNG", optimize=True)
    assert target.stat().st_size < MAX_IMAGE_BYTES
