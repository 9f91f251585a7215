"""``Notifier.test("chat")`` on a Telegram channel: the stages and what they say."""

from __future__ import annotations

from collections.abc import Callable

from pytest_httpserver import HTTPServer

from dbnotify import Notifier, Status, TestReport

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
PATH = f"/bot{TOKEN}/sendMessage"
MakeNotifier = Callable[..., Notifier]


def stages(report: TestReport) -> list[tuple[str, bool, str]]:
    return [(s.name, s.ok, s.detail) for s in report.stages]


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


async def test_without_sending_no_request_is_made(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    async with make_notifier(base_url(httpserver), disable_notification=True) as notifier:
        report = await notifier.test("chat", send_message=False)
    assert report.ok
    assert stages(report) == [
        (
            "config",
            True,
            f"chat -1001234567890 via http://{httpserver.host}:{httpserver.port}, parse_mode "
            "HTML, silent; no request sent",
        )
    ]
    assert len(httpserver.log) == 0


async def test_sends_the_test_notification(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(
        {"ok": True, "result": {"message_id": 1}}
    )
    async with make_notifier(base_url(httpserver), parse_mode="MarkdownV2") as notifier:
        report = await notifier.test("chat")
    assert report.ok, report
    assert stages(report) == [
        (
            "config",
            True,
            f"chat -1001234567890 via http://{httpserver.host}:{httpserver.port}, parse_mode "
            "MarkdownV2",
        ),
        ("request", True, "delivered: 200 OK"),
    ]
    assert [d.status for d in report.deliveries] == [Status.DELIVERED]
    text = httpserver.log[0][0].get_json()["text"]
    assert text.startswith("*Test Notification*\n\nThis is a test notification\\.")


async def test_a_refusal_fails_the_request_stage_with_telegrams_words(
    httpserver: HTTPServer, make_notifier: MakeNotifier
) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        '{"ok":false,"error_code":403,"description":"Forbidden: bot is not a member of the '
        'channel chat"}',
        status=403,
        content_type="application/json",
    )
    async with make_notifier(base_url(httpserver)) as notifier:
        report = await notifier.test("chat")
    assert not report.ok
    assert stages(report)[1] == (
        "request",
        False,
        "Telegram refused the message: Forbidden: bot is not a member of the channel chat",
    )
    assert report.stages[1].hint is not None
    assert report.stages[1].hint.endswith("add it again")
    (delivery,) = report.deliveries
    assert delivery.parks_channel
