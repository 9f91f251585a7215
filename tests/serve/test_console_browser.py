"""The console in a real browser: headless Debian Chromium driven by Playwright, against
``dbnotify serve`` in its own process and a local aiosmtpd.

One walk through what an operator does (sign in, add an email channel, Test it, Save,
an event sent through the API, history, a dead letter retried, the previews), and the
refusals (a wrong token, a form without its CSRF token). Each page is photographed;
with ``DBNOTIFY_SCREENSHOTS=docs/images`` the pictures of docs/console.md are
refreshed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from dbnotify.events import Event
from dbnotify.testing.smtpd import LocalSMTPServer

from .conftest import ADMIN_TOKEN, SEND_TOKEN, Served, bearer

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    yield opened
    await context.close()


async def photo(page: Page, tmp_path: Path, name: str) -> None:
    """``console-NAME.png`` of the whole page; copied where DBNOTIFY_SCREENSHOTS says."""
    path = tmp_path / f"console-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    folder = os.environ.get("DBNOTIFY_SCREENSHOTS")
    if folder:
        target = (ROOT / folder).resolve()
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def sign_in(page: Page, served: Served, token: str) -> None:
    await page.goto(f"{served.url}/console/")
    await expect(page).to_have_url(f"{served.url}/console/sign-in")
    await page.fill("#token", token)
    await page.click("button:has-text('Sign in')")


async def send_event(served: Served, event: Event) -> None:
    """``POST /v1/events`` with the send token, as DBackup sends one."""
    body = {"type": event.type, "data": dict(event.data)}
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(SEND_TOKEN)) as client:
        reply = await client.post("/v1/events", json=body)
    assert reply.status_code == 202, reply.text


async def until_shown(page: Page, url: str, text: str, seconds: float = 30) -> None:
    """Reload ``url`` until ``text`` is in its table (the worker delivers in the
    background)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        await page.goto(url)
        rows = page.locator("table.history tbody")
        if await rows.count() and text in await rows.inner_text():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{text!r} never appeared on {url}:\n{await page.inner_text('main')}"
            )
        await asyncio.sleep(0.5)


async def test_an_operator_adds_tests_and_saves_a_channel_then_watches_deliveries(
    served: Served, smtp: LocalSMTPServer, page: Page, tmp_path: Path
) -> None:
    console = f"{served.url}/console"
    await page.goto(f"{console}/sign-in")
    await photo(page, tmp_path, "sign-in")
    await sign_in(page, served, ADMIN_TOKEN)
    await expect(page).to_have_url(f"{console}/channels")
    await expect(page.locator("table.list")).to_contain_text("ops-mail")

    # Add channel -> Email -> fill in -> Test -> Save, as DBackup's own page goes
    await page.click("text=Add channel")
    await expect(page.locator("ul.types")).to_contain_text("Email (SMTP)")
    await photo(page, tmp_path, "add-channel")
    await page.click("ul.types a:has-text('email')")
    await expect(page.locator("h1")).to_contain_text("Add email channel")
    assert await page.locator("#f-preset option").all_inner_texts() == [
        "—",
        *["gmail", "sendgrid", "mailgun", "ses", "mailtrap", "postfix"],
    ]
    assert await page.get_attribute("#f-password", "type") == "password"
    await page.fill("#f-name", "team-mail")
    await page.fill("#f-host", "127.0.0.1")
    await page.fill("#f-port", str(closed_port()))
    await page.select_option("#f-security", "none")
    await page.fill("#f-from", "DBackup <dbackup@example.com>")
    await page.fill("#f-to", "team@example.com")
    await page.click("#test-button")
    report = page.locator("#test-report .report")
    await expect(report).to_contain_text("Test failed", timeout=30_000)
    failed = page.locator(".stages li.failed")
    await expect(failed.locator(".stage")).to_have_text("connect")
    await expect(failed.locator(".hint")).to_contain_text("check the SMTP host and port")
    await photo(page, tmp_path, "channel-test-failed")
    await page.fill("#f-port", str(smtp.port))
    await page.click("#test-button")
    await expect(report).to_contain_text("Test passed", timeout=30_000)
    stages = await page.locator(".stages .stage").all_inner_texts()
    assert {"resolve", "connect", "ehlo", "auth", "send"} <= set(stages)
    (test_message,) = [m for m in smtp.messages if m.rcpt_tos == ("team@example.com",)]
    assert "Test Notification" in test_message.message["Subject"]
    await photo(page, tmp_path, "channel-test")
    await page.click("button[value=save]")
    await expect(page).to_have_url(f"{console}/channels?saved=team-mail")
    await expect(page.locator(".alert.good")).to_contain_text("team-mail saved")
    saved = served.config.read_text(encoding="utf-8")
    assert "[channels.team-mail]" in saved
    assert "# dbnotify for DBackup (a comment the console must keep)" in saved

    # an event through the API: delivered; another to a refusing address: dead
    await send_event(served, Event("backup_success", {"job_name": "nightly-pg"}))
    await until_shown(page, f"{console}/history", "delivered")
    smtp.rcpt_replies["ops@example.com"] = "550 5.1.1 no such user"
    await send_event(
        served, Event("backup_failure", {"job_name": "nightly-pg", "error": "disk full"})
    )
    await until_shown(page, f"{console}/history?status=dead", "550 5.1.1 no such user")
    await page.goto(f"{console}/history")
    rows = page.locator("table.history tbody tr")
    await expect(rows.filter(has_text="backup_success")).to_contain_text("delivered")
    await expect(rows.filter(has_text="backup_failure")).to_contain_text("dead")
    await photo(page, tmp_path, "history")

    await page.goto(f"{console}/dead-letters")
    dead = page.locator("table.history tbody tr")
    await expect(dead).to_have_count(1)
    await expect(dead).to_contain_text("no such user")
    await photo(page, tmp_path, "dead-letters")
    del smtp.rcpt_replies["ops@example.com"]
    await dead.locator("button:has-text('Retry')").click()
    await expect(page.locator(".alert.good")).to_contain_text("1 delivery due again now")
    await until_shown(page, f"{console}/history?event=backup_failure", "delivered")

    await page.goto(f"{console}/channels")
    await expect(page.locator("tr", has_text="ops-mail")).to_contain_text("delivered")
    await photo(page, tmp_path, "channels")
    await page.goto(f"{console}/channels/ops-mail")
    await photo(page, tmp_path, "channel-edit")

    await page.goto(f"{console}/previews")
    await photo(page, tmp_path, "previews")
    await page.click("text=Backup Failed")
    frame = page.locator("iframe.email")
    assert await frame.get_attribute("sandbox") == ""
    inside = page.frame_locator("iframe.email")
    await expect(inside.locator("body")).to_contain_text("Backup job 'nightly-pg' failed.")
    await photo(page, tmp_path, "preview")


async def test_a_wrong_token_is_refused_in_the_browser(served: Served, page: Page) -> None:
    await sign_in(page, served, "not-a-token-" + "x" * 20)
    await expect(page.locator(".alert.bad")).to_contain_text("unknown token")
    assert page.url == f"{served.url}/console/sign-in"
    cookies = await page.context.cookies()
    assert "dbnotify_console" not in {c["name"] for c in cookies}


async def test_a_form_without_its_csrf_token_gets_the_403_page(
    served: Served, page: Page, tmp_path: Path
) -> None:
    await sign_in(page, served, ADMIN_TOKEN)
    await page.goto(f"{served.url}/console/channels/ops-mail/delete")
    await page.evaluate("document.querySelector('main form input[name=csrf]').remove()")
    await page.click("button:has-text('Delete ops-mail')")
    await expect(page.locator("h1")).to_contain_text("403")
    await expect(page.locator("main")).to_contain_text("CSRF token is missing")
    await photo(page, tmp_path, "error")
    assert "[channels.ops-mail]" in served.config.read_text(encoding="utf-8")


async def test_the_session_cookie_is_strict_and_http_only(served: Served, page: Page) -> None:
    await sign_in(page, served, ADMIN_TOKEN)
    await expect(page).to_have_url(f"{served.url}/console/channels")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == "dbnotify_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert await page.evaluate("document.cookie") == ""
