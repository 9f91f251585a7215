"""The embed: Markdown escaped, every Discord limit kept, with an ellipsis."""

from __future__ import annotations

import datetime as dt

from dbnotify.channel import Field, Notification, Renderer, Severity
from dbnotify_discord import embed
from dbnotify_discord.embed import ELLIPSIS, escape, fit, units

WHEN = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def notification(
    *,
    title: str = "Backup Failed",
    message: str = "Backup job 'x' failed.",
    fields: tuple[Field, ...] = (),
) -> Notification:
    return Notification(
        id="n1",
        event_type="backup_failure",
        severity=Severity.FAILURE,
        title=title,
        message=message,
        fields=fields,
        timestamp=WHEN,
    )


def test_escape_markdown() -> None:
    assert escape("**bold** _it_ ~~s~~ `code` ||spoiler|| [a](https://x) <@123> C:\\x") == (
        "\\*\\*bold\\*\\* \\_it\\_ \\~\\~s\\~\\~ \\`code\\` \\|\\|spoiler\\|\\| "
        "\\[a\\](https://x) \\<@123> C:\\\\x"
    )
    assert escape("# not a heading\n> not a quote\n - not a list\nx-y > z") == (
        "\\# not a heading\n\\> not a quote\n \\- not a list\nx-y > z"
    )


def test_units_count_like_discord() -> None:
    assert units("abc") == 3
    assert units("é") == 1
    assert units("💾") == 2


def test_fit() -> None:
    assert fit("abc", 3) == "abc"
    assert fit("abcd", 3) == "ab" + ELLIPSIS
    assert units(fit("💾" * 10, 7)) <= 7
    assert fit("ab\\*cd", 4) == "ab" + ELLIPSIS  # never half an escape
    assert fit("a\\\\bcd", 4) == "a\\\\" + ELLIPSIS  # a whole escaped backslash stays


def test_long_texts_are_cut_to_the_limits() -> None:
    fields = tuple(Field(f"F{i:02d}" + "n" * 300, "v" * 2000) for i in range(30))
    result = embed.embed(
        notification(title="T" * 300, message="m" * 5000, fields=fields), Renderer()
    )
    assert units(result["title"]) == 256
    assert result["title"].endswith(ELLIPSIS)
    assert len(result["fields"]) <= 25
    for field in result["fields"]:
        assert units(field["name"]) <= 256
        assert units(field["value"]) <= 1024
    total = (
        units(result["title"])
        + units(result["description"])
        + sum(units(f["name"]) + units(f["value"]) for f in result["fields"])
        + units(result["footer"]["text"])
    )
    assert total <= 6000
    assert units(result["description"]) >= 200
    assert result["description"].endswith(ELLIPSIS)


def test_more_than_25_fields_says_how_many_are_left_out() -> None:
    fields = tuple(Field(f"F{i}", str(i)) for i in range(30))
    result = embed.embed(notification(fields=fields), Renderer())
    assert len(result["fields"]) == 25
    assert result["fields"][23] == {"name": "F23", "value": "23", "inline": True}
    assert result["fields"][24] == {"name": ELLIPSIS, "value": "6 more not shown", "inline": False}


def test_description_limit_alone() -> None:
    result = embed.embed(notification(message="m" * 5000), Renderer())
    assert result["description"] == "m" * 4095 + ELLIPSIS


def test_empty_message_and_values() -> None:
    result = embed.embed(notification(message="", fields=(Field("Note", ""),)), Renderer())
    assert "description" not in result
    assert result["fields"] == [{"name": "Note", "value": "\u200b", "inline": True}]


def test_colours_follow_the_severity() -> None:
    renderer = Renderer()
    colours = {}
    for severity in Severity:
        n = Notification("n", "e", severity, "T", "m", (), WHEN)
        colours[severity] = embed.embed(n, renderer)["color"]
    assert colours == {
        Severity.SUCCESS: 0x16A34A,
        Severity.FAILURE: 0xDC2626,
        Severity.INFO: 0x2563EB,
        Severity.WARNING: 0xD97706,
    }
