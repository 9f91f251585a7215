"""The console over plain HTTP (httpx): its cookies, CSRF and origin checks, scopes,
security headers, error pages, and that no secret ever reaches a page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from dbnotify.events import CATALOGUE
from dbnotify.testing.smtpd import LocalSMTPServer

from .conftest import ADMIN_TOKEN, READ_TOKEN, SEND_TOKEN, Served, email_config
from .console_client import console, csrf_of, sign_in, signed_in

SMTP_PASSWORD = "smtp-password-that-must-stay-put"


def assert_secure_headers(reply: httpx.Response) -> None:
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["cache-control"] == "no-store"


def cookie_header(reply: httpx.Response, name: str) -> str:
    (found,) = [c for c in reply.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return found


async def test_sign_in_sets_a_strict_http_only_session_cookie(served: Served) -> None:
    async with console(served) as client:
        page = await client.get("/console/sign-in")
        assert page.status_code == 200
        assert_secure_headers(page)
        assert 'type="password"' in page.text
        assert 'method="post"' in page.text
        reply = await client.post(
            "/console/sign-in", data={"csrf": csrf_of(page.text), "token": ADMIN_TOKEN}
        )
        assert reply.status_code == 303
        assert reply.headers["location"] == "/console/channels"
        cookie = cookie_header(reply, "dbnotify_console").lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "path=/console" in cookie
        assert "secure" not in cookie  # plain http on loopback: a Secure cookie would be lost
        assert ADMIN_TOKEN not in reply.headers.get("set-cookie", "")
        channels = await client.get("/console/channels")
    assert channels.status_code == 200
    assert "ops-mail" in channels.text
    assert "admin" in channels.text
    assert ADMIN_TOKEN not in channels.text


async def test_a_wrong_token_is_refused_on_the_page(served: Served) -> None:
    async with console(served) as client:
        reply = await sign_in(client, "w" * 32)
    assert reply.status_code == 401
    assert "unknown token" in reply.text
    assert "w" * 32 not in reply.text
    assert "dbnotify_console=" not in reply.headers.get("set-cookie", "")


async def test_a_send_only_token_cannot_sign_in(served: Served) -> None:
    async with console(served) as client:
        reply = await sign_in(client, SEND_TOKEN)
        after = await client.get("/console/channels")
    assert reply.status_code == 403
    assert "token &#39;dbackup&#39; may only send events" in reply.text
    assert after.status_code == 303
    assert after.headers["location"] == "/console/sign-in"


async def test_pages_need_a_session(served: Served) -> None:
    async with console(served) as client:
        for path in ("/console/", "/console/channels", "/console/history", "/console/previews"):
            reply = await client.get(path)
            assert reply.status_code == 303, path
            assert reply.headers["location"] == "/console/sign-in"
            assert_secure_headers(reply)


async def test_a_form_without_its_csrf_token_is_refused(served: Served) -> None:
    async with signed_in(served, ADMIN_TOKEN) as client:
        reply = await client.post("/console/channels/ops-mail/delete", data={})
        assert reply.status_code == 403
        assert "CSRF token is missing" in reply.text
        assert "reload the page" in reply.text
        wrong = await client.post("/console/channels/ops-mail/delete", data={"csrf": "x" * 43})
        assert wrong.status_code == 403
        still = await client.get("/console/channels")
    assert "ops-mail" in still.text
    assert_secure_headers(reply)


async def test_a_form_from_another_site_is_refused(served: Served) -> None:
    async with signed_in(served, ADMIN_TOKEN) as client:
        page = await client.get("/console/channels/ops-mail/delete")
        token = csrf_of(page.text)
        other = await client.post(
            "/console/channels/ops-mail/delete",
            data={"csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        cross = await client.post(
            "/console/channels/ops-mail/delete",
            data={"csrf": token},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
    assert other.status_code == 403
    assert "another origin" in other.text
    assert "https://evil.example" in other.text
    assert cross.status_code == 403
    assert "another site" in cross.text


async def test_the_sign_in_form_needs_its_own_csrf_cookie(served: Served) -> None:
    async with console(served) as client:
        reply = await client.post("/console/sign-in", data={"token": ADMIN_TOKEN})
    assert reply.status_code == 403
    assert "dbnotify_console=" not in reply.headers.get("set-cookie", "")


async def test_a_read_token_sees_but_cannot_change(served: Served) -> None:
    async with signed_in(served, READ_TOKEN) as client:
        page = await client.get("/console/channels/ops-mail")
        assert page.status_code == 200
        assert "<fieldset disabled>" in page.text
        assert "Read only" in page.text
        assert 'value="save"' not in page.text
        reply = await client.post(
            "/console/channels/ops-mail",
            data={"csrf": csrf_of(page.text), "action": "save", "f.host": "other.example"},
        )
    assert reply.status_code == 403
    assert "token &#39;reader&#39; may only read" in reply.text
    assert "other.example" not in served.config.read_text()


async def test_signing_out_ends_the_session(served: Served) -> None:
    async with signed_in(served, ADMIN_TOKEN) as client:
        page = await client.get("/console/channels")
        session = client.cookies["dbnotify_console"]
        out = await client.post("/console/sign-out", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert out.headers["location"] == "/console/sign-in"
        client.cookies.set("dbnotify_console", session, path="/console")
        again = await client.get("/console/channels")
    assert again.status_code == 303
    assert again.headers["location"] == "/console/sign-in"


async def test_no_secret_reaches_any_page(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    config = email_config(tmp_path, smtp.port)
    text = config.read_text(encoding="utf-8").replace(
        'security = "none"\n',
        f'security = "none"\nuser = "dbackup"\npassword = "{SMTP_PASSWORD}"\n'
        "allow_plaintext_auth = true\n",
    )
    config.write_text(text, encoding="utf-8")
    served = serve(config)
    async with signed_in(served, ADMIN_TOKEN) as client:
        pages = [
            await client.get(path)
            for path in (
                "/console/channels",
                "/console/channels/ops-mail",
                "/console/channels/ops-mail/delete",
                "/console/history",
                "/console/dead-letters",
                "/console/previews",
                "/console/previews/backup_failure",
                "/console/previews/backup_failure/email.html",
            )
        ]
    for page in pages:
        assert page.status_code == 200, page.url
        assert SMTP_PASSWORD not in page.text, page.url
        assert ADMIN_TOKEN not in page.text, page.url
    edit = pages[1].text
    assert 'name="f.password" type="password" autocomplete="new-password" value=""' in edit
    assert ">set</span>" in edit
    assert 'value="dbackup"' in edit  # other fields are filled in
    assert "password: written in the configuration file as it is" in edit  # a literal: warned
    assert "secret written in the file" in pages[0].text


async def test_the_email_preview_is_served_sandboxed(served: Served) -> None:
    async with signed_in(served, ADMIN_TOKEN) as client:
        page = await client.get("/console/previews/backup_failure")
        email = await client.get("/console/previews/backup_failure/email.html")
    assert 'sandbox=""' in page.text
    assert 'src="/console/previews/backup_failure/email.html"' in page.text
    assert email.status_code == 200
    policy = email.headers["content-security-policy"]
    assert "sandbox" in policy
    assert "frame-ancestors 'self'" in policy
    assert "script-src" not in policy  # default-src 'none': nothing runs
    assert email.headers["x-frame-options"] == "SAMEORIGIN"
    assert "Backup Failed" in email.text
    assert "nightly-pg" in email.text


async def test_errors_are_pages_with_the_field_the_value_and_the_fix(served: Served) -> None:
    async with signed_in(served, ADMIN_TOKEN) as client:
        missing = await client.get("/console/no-such-page")
        bad_since = await client.get("/console/history", params={"since": "yesterday"})
        no_channel = await client.get("/console/channels/nope")
        no_event = await client.get("/console/previews/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "no console page /console/no-such-page" in missing.text
    assert bad_since.status_code == 400
    assert "<code>since</code>" in bad_since.text
    assert "yesterday" in bad_since.text
    assert "2026-11-24T05:00" in bad_since.text
    assert no_channel.status_code == 404
    assert no_event.status_code == 404
    assert "backup_success" in no_event.text
    for reply in (missing, bad_since, no_channel, no_event):
        assert "Traceback" not in reply.text
        assert_secure_headers(reply)


async def test_the_console_can_be_turned_off(
    smtp: LocalSMTPServer, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    config = email_config(tmp_path, smtp.port, extra="[serve]\nconsole = false\n")
    served = serve(config)
    async with console(served) as client:
        reply = await client.get("/console/sign-in")
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"


async def test_a_channel_that_does_not_validate_is_shown_again_with_its_problems(
    served: Served,
) -> None:
    before = served.config.read_text(encoding="utf-8")
    async with signed_in(served, ADMIN_TOKEN) as client:
        page = await client.get("/console/channels/new", params={"type": "email"})
        form = {
            "csrf": csrf_of(page.text),
            "type": "email",
            "name": "team-mail",
            "action": "save",
            "f.host": "127.0.0.1",
            "f.port": "not-a-port",
            "f.from": "DBackup <dbackup@example.com>",
            "f.to": "team@example.com",
            "f.password": "typed-but-never-echoed",
        }
        typed = await client.post("/console/channels/new", data=form)
        refused = await client.post(
            "/console/channels/new", data={**form, "f.port": "70000", "f.user": "dbackup"}
        )
    assert typed.status_code == 422
    assert "a whole number, e.g. 587" in typed.text
    assert "not-a-port" in typed.text
    assert 'value="127.0.0.1"' in typed.text  # what was typed is kept
    assert refused.status_code == 422
    assert "70000" in refused.text
    assert 'class="field invalid"' in refused.text
    for reply in (typed, refused):
        assert "typed-but-never-echoed" not in reply.text
        assert "type them again" in reply.text
    assert served.config.read_text(encoding="utf-8") == before


async def test_every_catalogue_event_has_its_email_preview(served: Served) -> None:
    async with signed_in(served, READ_TOKEN) as client:
        listing = await client.get("/console/previews")
        for event_type, spec in CATALOGUE.items():
            assert f'href="/console/previews/{event_type}"' in listing.text
            page = await client.get(f"/console/previews/{event_type}")
            email = await client.get(f"/console/previews/{event_type}/email.html")
            assert page.status_code == 200, event_type
            assert "DBackup &lt;dbackup@example.com&gt;" in page.text  # ops-mail's sender
            assert email.status_code == 200, event_type
            assert spec.title in email.text


async def test_retrying_a_delivery_that_is_not_there_names_it(served: Served) -> None:
    async with signed_in(served, ADMIN_TOKEN) as client:
        page = await client.get("/console/dead-letters")
        assert "No dead letters." in page.text
        reply = await client.post(
            "/console/dead-letters/retry", data={"csrf": csrf_of(page.text), "delivery_id": "42"}
        )
    assert reply.status_code == 404
    assert "no delivery #42 in the outbox" in reply.text
    assert "<code>delivery_id</code>" in reply.text
    assert "<code>42</code>" in reply.text
