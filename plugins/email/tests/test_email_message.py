"""The message as it arrives: headers, both parts, escaping, and no header injection."""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import re
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest

from dbnotify import Event, EventError, Severity, Status

SENDER = "DBackup Alerts <dbackup@example.com>"
WHEN = dt.datetime(2025, 3, 14, 2, 30, 5, tzinfo=dt.UTC)
XSS = "<img src=x onerror=alert(1)>"
LATE = dt.timedelta(minutes=1)
FAILURE = Event(
    "backup_failure",
    {
        "job_name": "nightly-pg",
        "source_name": "pg-main",
        "error": XSS,
    },
    timestamp=WHEN,
)


def header_block(received: Any) -> str:
    return received.data.split(b"\r\n\r\n", 1)[0].decode("ascii")


async def deliver(
    smtp_server: Any, make_notifier: Any, event: Event, **options: Any
) -> tuple[Any, Any]:
    server = await smtp_server()
    result = await make_notifier(server.port, **options).notify(event)
    assert all(r.status is Status.DELIVERED for r in result.recipients), result
    (received,) = server.messages
    return result, received


# --- headers --------------------------------------------------------------------------------


async def test_headers(smtp_server: Any, make_notifier: Any) -> None:
    result, received = await deliver(
        smtp_server, make_notifier, FAILURE, to=["ops@example.com", "Dev Team <dev@example.com>"]
    )
    msg = received.message

    assert msg["Subject"] == "[DBackup] Backup Failed: nightly-pg"
    assert msg["From"] == "DBackup Alerts <dbackup@example.com>"
    assert (msg["From"].addresses[0].display_name, msg["From"].addresses[0].addr_spec) == (
        "DBackup Alerts",
        "dbackup@example.com",
    )
    assert msg["To"] == "ops@example.com, Dev Team <dev@example.com>"
    assert abs(email.utils.parsedate_to_datetime(msg["Date"]) - dt.datetime.now(dt.UTC)) < LATE
    assert msg["Message-ID"] == f"<{result.notification_id}@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"  # Exchange's out-of-office, too
    assert msg["X-DBackup-Event"] == "backup_failure"
    assert msg.get_all("Bcc") is None
    assert msg.get_all("Cc") is None
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


async def test_message_id_is_stable_per_notification(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    server = await smtp_server()
    notifier = make_notifier(server.port)
    first = await notifier.notify(FAILURE)
    second = await notifier.notify(FAILURE)

    ids = [m.message["Message-ID"] for m in server.messages]
    assert ids == [
        f"<{first.notification_id}@example.com>",
        f"<{second.notification_id}@example.com>",
    ]
    assert ids[0] != ids[1]


async def test_date_is_the_attempt_not_the_event(smtp_server: Any, make_notifier: Any) -> None:
    """A message sent hours after its event is dated when sent (no DATE_IN_PAST in spam
    filters); the event's time stays in the body."""
    hours_ago = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=4)
    event = Event("backup_failure", {"job_name": "nightly-pg"}, timestamp=hours_ago)
    result, received = await deliver(smtp_server, make_notifier, event)
    msg = received.message

    assert abs(email.utils.parsedate_to_datetime(msg["Date"]) - dt.datetime.now(dt.UTC)) < LATE
    assert msg["Message-ID"] == f"<{result.notification_id}@example.com>"
    shown = hours_ago.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert shown in received.part("plain")
    assert shown in received.part("html")


def test_the_date_header_is_the_email_packages_for_every_second_and_offset() -> None:
    """Its text is kept for the second it names: fractions, other seconds and other
    offsets never get another's."""
    from dbnotify_email.message import date_header

    offsets = [dt.UTC, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=2))]
    for step in range(3000):
        when = (WHEN + dt.timedelta(microseconds=step * 1777)).astimezone(offsets[step % 3])
        assert date_header(when) == email.utils.format_datetime(when)
    now = email.utils.parsedate_to_datetime(date_header())
    assert abs(now - dt.datetime.now(dt.UTC)) < LATE


def test_a_retry_keeps_the_message_id_and_is_dated_when_sent() -> None:
    """Each attempt builds the message anew: same Message-ID, the attempt's Date."""
    import email
    import email.policy

    from dbnotify.events import to_notification
    from dbnotify.rendering import Renderer
    from dbnotify_email.plugin import outgoing, validate_config

    config = validate_config(
        {"host": "127.0.0.1", "security": "none", "from": "d@example.com", "to": "o@example.com"}
    )
    notification = to_notification(FAILURE)
    first, later = (WHEN + dt.timedelta(hours=1), WHEN + dt.timedelta(days=2))
    sent = [
        email.message_from_bytes(outgoing(config, notification, Renderer(), date=when)[0].data)
        for when in (first, later)
    ]
    assert [m["Message-ID"] for m in sent] == [f"<{notification.id}@example.com>"] * 2
    assert [email.utils.parsedate_to_datetime(m["Date"]) for m in sent] == [first, later]


def test_every_header_line_fits_78_columns() -> None:
    """RFC 5322 2.1.1: lines SHOULD be at most 78 characters (the top Content-Type, with
    its boundary, was 82)."""
    from dbnotify.events import to_notification
    from dbnotify.rendering import Renderer
    from dbnotify_email.plugin import outgoing, validate_config

    config = validate_config(
        {"host": "127.0.0.1", "security": "none", "from": SENDER, "to": "o@example.com"}
    )
    (sent,) = outgoing(config, to_notification(FAILURE), Renderer())
    head = sent.data.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")
    assert [line for line in head if len(line) > 78] == []
    msg = email.message_from_bytes(sent.data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_boundary() is not None
    assert len(list(msg.iter_parts())) == 2


async def test_text_part_wraps_long_values_under_their_first_line(
    smtp_server: Any, make_notifier: Any
) -> None:
    error = "connection to server failed: " + "the database system is shutting down " * 4
    event = Event("backup_failure", {"job_name": "nightly-pg", "error": error.strip()})
    _, received = await deliver(smtp_server, make_notifier, event)
    lines = received.part("plain").splitlines()

    assert max(len(line) for line in lines) <= 76, lines
    start = lines.index(
        "Error: connection to server failed: the database system is shutting down the"
    )
    assert lines[start + 1 : start + 4] == [
        "       database system is shutting down the database system is shutting down",
        "       the database system is shutting down",
        "",
    ]


# --- the parts --------------------------------------------------------------------------------


async def test_text_part_has_title_message_and_every_field(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    _, received = await deliver(smtp_server, make_notifier, FAILURE)
    lines = received.part("plain").splitlines()

    assert lines == [
        "Backup Failed",
        "=============",
        "",
        f"Backup job 'nightly-pg' failed. Error: {XSS}",  # plain text: data as it is
        "",
        "Job:    nightly-pg",
        "Source: pg-main",
        f"Error:  {XSS}",
        "",
        "--",
        "2025-03-14 02:30:05 UTC · Sent by DBackup",
    ]


async def test_html_part_is_a_full_document_with_colour_fields_and_escaped_data(
    smtp_server: Any,
    make_notifier: Any,
) -> None:
    _, received = await deliver(smtp_server, make_notifier, FAILURE)
    html = received.part("html")

    assert html.startswith("<!DOCTYPE html>")
    assert html.rstrip().endswith("</html>")
    assert "<title>Backup Failed</title>" in html
    bar = re.search(r'<td class="bar"[^>]*>', html)
    assert bar is not None
    assert 'bgcolor="#dc2626"' in bar.group()
    assert "background-color: #dc2626" in bar.group()
    assert 'data-severity="failure"' in bar.group()
    assert re.search(r"<h1[^>]*>Backup Failed</h1>", html)
    cells = re.findall(r"<th[^>]*>([^<]*)</th>\s*<td[^>]*>([^<]*)</td>", html)
    assert cells == [
        ("Job", "nightly-pg"),
        ("Source", "pg-main"),
        ("Error", "&lt;img src=x onerror=alert(1)&gt;"),
    ]
    assert "<img" not in html
    # the error once, in its field: the message sentence leaves it to the table
    assert re.search(r"<p[^>]*>Backup job &#39;nightly-pg&#39; failed\.</p>", html)
    assert html.count("onerror=alert(1)") == 1
    assert "2025-03-14 02:30:05 UTC · Sent by DBackup" in html


async def test_a_50_kb_error_arrives_whole_in_text_and_under_gmails_clip_in_html(
    smtp_server: Any, make_notifier: Any
) -> None:
    """Gmail clips an HTML body past ~102 KB. The error is shown once and cut in the
    HTML, with a note; the text part has every character of it."""
    error = "".join(f"  at frame {i:05d} in dump.py\n" for i in range(2000))[:50_000]
    event = Event("backup_failure", {"job_name": "nightly-pg", "error": error})
    _, received = await deliver(smtp_server, make_notifier, event)
    html = received.part("html")

    assert len(html.encode()) < 50_000, len(html.encode())
    assert html.count("at frame 00000 in dump.py") == 1
    assert "more characters: the plain-text part of this email has the whole text" in html
    assert "Sent by DBackup" in html
    plain = received.part("plain")
    assert all(line.strip() in plain for line in error.splitlines())  # every frame


async def test_many_long_fields_stay_under_gmails_clip_together(
    smtp_server: Any, make_notifier: Any
) -> None:
    """Each value under the one-value cap (15 KB of 20,000 characters) but 150 KB in all:
    the HTML has a budget for all of them, spent in order; the values past it are cut,
    each with the note, the fields and footer stay; the text part has every line."""
    fields = {
        f"Log {n}": "".join(f"log {n} line {i:04d}: " + "x" * 40 + "\n" for i in range(250))
        for n in range(10)
    }
    assert all(14_000 < len(value) < 16_000 for value in fields.values())
    event = Event("custom", title="Nightly report", message="Ten logs.", fields=fields)
    _, received = await deliver(smtp_server, make_notifier, event)
    html = received.part("html")

    assert len(html.encode()) < 100_000, len(html.encode())
    assert "log 0 line 0249: " in html  # the first values are whole
    note = "more characters: the plain-text part of this email has the whole text"
    assert 1 <= html.count(note) <= 10
    assert all(f"Log {n}</th>" in html for n in range(10))  # every field is there
    assert "log 9 line 0000: " in html  # the start of the last one, too
    assert "Sent by DBackup" in html
    plain = received.part("plain")
    assert all(line in plain for value in fields.values() for line in value.splitlines())


@pytest.mark.parametrize(
    ("event", "colour"),
    [
        (Event("backup_success", {"job_name": "nightly-pg"}), "#16a34a"),
        (Event("test"), "#2563eb"),
        (Event("disk_space", title="Disk almost full", severity=Severity.WARNING), "#d97706"),
    ],
)
async def test_bar_colour_follows_severity(
    smtp_server: Any,
    make_notifier: Any,
    event: Event,
    colour: str,
) -> None:
    _, received = await deliver(smtp_server, make_notifier, event)
    bar = re.search(r'<td class="bar"[^>]*>', received.part("html"))
    assert bar is not None
    assert f'bgcolor="{colour}"' in bar.group()


async def test_non_ascii_data_arrives_intact(smtp_server: Any, make_notifier: Any) -> None:
    event = Event("backup_failure", {"job_name": "nächtlich-pg", "error": "Speicher voll ✗"})
    _, received = await deliver(
        smtp_server, make_notifier, event, **{"from": "Jörg's Backup <dbackup@example.com>"}
    )
    msg = received.message

    assert msg["Subject"] == "[DBackup] Backup Failed: nächtlich-pg"
    assert msg["From"].addresses[0].display_name == "Jörg's Backup"
    assert "Speicher voll ✗" in received.part("plain")
    assert "Speicher voll ✗" in received.part("html")
    header_block(received)  # 7-bit headers: raises if not ASCII


# --- header injection -------------------------------------------------------------------------


async def test_line_break_in_title_injects_nothing(smtp_server: Any, make_notifier: Any) -> None:
    event = Event(
        "disk_alert",
        title="Disk alert\r\nBcc: evil@example.net",
        message="Volume /var is 97% full.",
    )
    _, received = await deliver(smtp_server, make_notifier, event)
    msg = received.message

    assert msg.get_all("Bcc") is None
    assert msg["Subject"] == "[DBackup] Disk alert Bcc: evil@example.net"
    assert re.search(r"^Subject: [^\r\n]*\r\nFrom: ", header_block(received) + "\r\n", re.MULTILINE)
    assert "evil@example.net" not in "".join(received.rcpt_tos)
    assert received.rcpt_tos == ("ops@example.com",)


@pytest.mark.parametrize(
    "title",
    [
        "=?UTF-8?Q?=0A?=Bcc: evil@example.net",
        "Report =?utf-8?b?DQo=?=Bcc: evil@example.net",
    ],
)
async def test_encoded_line_break_in_title_injects_nothing(
    smtp_server: Any,
    make_notifier: Any,
    title: str,
) -> None:
    # CVE-2024-6923: the email package decodes the word and writes the newline unquoted
    _, received = await deliver(smtp_server, make_notifier, Event("disk_alert", title=title))
    msg = received.message

    assert msg.get_all("Bcc") is None
    assert [k for k in msg if k.lower() not in {"content-type", "mime-version"}] == [
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "X-Auto-Response-Suppress",
        "X-DBackup-Event",
    ]
    assert "\n" not in msg["Subject"]
    assert "\r" not in msg["Subject"]
    assert msg["Subject"] == "[DBackup] " + title.replace("=?", "= ?")
    assert received.rcpt_tos == ("ops@example.com",)


@pytest.mark.parametrize(
    "to",
    [
        ['"Bob, evil@example.net" <bob@example.com>'],
        '"Bob, evil@example.net" <bob@example.com>',
    ],
    ids=["list", "string"],
)
async def test_display_name_holding_an_address_adds_no_recipient(
    smtp_server: Any,
    make_notifier: Any,
    to: Any,
) -> None:
    result, received = await deliver(smtp_server, make_notifier, FAILURE, to=to)
    msg = received.message

    assert [r.recipient for r in result.recipients] == ["bob@example.com"]
    assert received.rcpt_tos == ("bob@example.com",)
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        ("Bob, evil@example.net", "bob@example.com")
    ]
    assert msg.get_all("Bcc") is None
    assert msg.get_all("Cc") is None
    assert msg["Subject"] == "[DBackup] Backup Failed: nightly-pg"
    assert 'To: "Bob, evil@example.net" <bob@example.com>\r\n' in header_block(received) + "\r\n"


def test_line_break_in_event_type_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(EventError, match=r"must be letters, digits and _ \. : -"):
        Event("disk\r\nBcc: evil@example.net", title="Disk alert")


def test_backstop_refuses_any_header_that_would_fold_into_two() -> None:
    """Whatever this Python's email package does with an encoded newline, none goes out."""
    from dbnotify_email.message import check_header

    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = "=?UTF-8?Q?=0A?=Bcc: evil@example.net"
    folded = SMTP.fold_binary("Subject", msg["Subject"])
    if re.search(rb"\r\n(?![ \t])|(?<!\r)\n", folded.removesuffix(b"\r\n")):
        # a vulnerable email package (CVE-2024-6923): the check must catch it
        with pytest.raises(ValueError, match="header Subject would break into a second header"):
            check_header("Subject", folded)
    else:  # a fixed one
        assert check_header("Subject", folded) == folded
    with pytest.raises(ValueError, match="header Subject would break into a second header"):
        check_header("Subject", b"Subject: hi\r\nBcc: evil@example.net\r\n")


# --- the message writer against the email package's reader ---------------------------------

TRICKY = [
    ".starts with a dot\n.\n..two dots",
    "trailing spaces   \nand a tab\t\nend",
    "a very long line " * 40,
    "old Mac\rline ends\r\nand Windows ones\r\n",
    "=?UTF-8?Q?=0A?= and = signs and =3D",
    "Grüße, 備份, emoji 🗄️, and a soft hyphen \u00ad",
    "From the start of a line (mbox would mangle it)",
    "",
]


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_written_message_reads_back_as_written(text: str) -> None:
    """Whatever the text holds, the email package reads back the same text and HTML."""
    import email
    import email.policy

    from dbnotify.events import to_notification
    from dbnotify_email.addresses import Mailbox
    from dbnotify_email.message import Rendered, build

    notification = to_notification(
        Event("backup_failure", {"job_name": "nightly-pg"}, timestamp=WHEN)
    )
    html = f"<p>{text}</p>"
    sender = Mailbox.parse('"Ops, Night Shift" <dbackup@example.com>')
    to = (Mailbox.parse("Jörg Müller <joerg@example.com>"), Mailbox.parse("a@b.org"))
    subject = "Subject " + "long " * 30 + "Grüße"
    data, utf8 = build(notification, Rendered(subject, text, html), sender=sender, to=to)

    assert not utf8
    assert max(data) < 128  # 7-bit: no 8BITMIME needed
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    bare = data.replace(b"\r\n", b"")
    assert (b"\r" in bare, b"\n" in bare) == (False, False)  # CRLF only
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.defects == []
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].display_name == "Ops, Night Shift"
    assert [a.display_name for a in msg["To"].addresses] == ["Jörg Müller", ""]
    plain = msg.get_body(("plain",))
    rich = msg.get_body(("html",))
    assert (plain is None, rich is None) == (False, False)
    assert isinstance(plain, EmailMessage)
    assert isinstance(rich, EmailMessage)

    def lines(content: str) -> str:  # line ends are CRLF on the wire, whatever they were
        return content.replace("\r\n", "\n").replace("\r", "\n")

    assert lines(plain.get_content()) == lines(text)
    assert lines(rich.get_content()) == lines(html)
