"""The ``dbnotify`` command as users run it: output, delivered mail, exit codes."""

from __future__ import annotations

import email
import email.policy
import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dbnotify.installed import GROUP, declared
from dbnotify.testing.smtpd import LocalSMTPServer

WORKSPACE = frozenset(
    tomllib.loads(path.read_text(encoding="utf-8"))["project"]["name"]
    for path in (Path(__file__).parents[1] / "plugins").glob("*/pyproject.toml")
)
"""The channel plugins of this workspace."""


async def test_plugins_lists_the_email_channel_with_its_distribution(cli) -> None:
    run = await cli("plugins", "--json")
    assert run.code == 0, run.err
    listed = json.loads(run.out)
    email_row = next(c for c in listed["channels"] if c["type"] == "email")
    assert email_row["distribution"] == "dbnotify-email"
    assert email_row["version"]
    assert email_row["user_delivery"] is True


async def test_plugins_can_be_blocked_by_environment(cli) -> None:
    env = {**os.environ, "DBNOTIFY_DISABLE_PLUGINS": "email"}
    run = await cli("plugins", "--json", env=env)
    listed = json.loads(run.out)
    assert "email" not in [c["type"] for c in listed["channels"]]
    assert {"type": "email", "reason": "disabled by DBNOTIFY_DISABLE_PLUGINS"} in listed["skipped"]


def _installed_channels() -> dict[str, str]:
    """channel type -> distribution, as the entry points of this environment declare."""
    return {
        ep.name: ep.dist.name if ep.dist else "(unknown)"
        for ep in importlib.metadata.entry_points(group="dbnotify.channels")
    }


def _table(out: str) -> dict[str, tuple[str, str, str]]:
    """``dbnotify plugins``' table: type -> (distribution, version, description), the
    description's wrapped lines joined again."""
    lines = out.splitlines()
    assert lines[0].split() == ["type", "distribution", "version", "description"], out
    indent = lines[0].index("description")
    rows: dict[str, tuple[str, str, str]] = {}
    last = ""
    for line in lines[1:]:
        if not line.startswith(" "):  # failed ... / skipped ... / checked ...
            continue
        if line[:indent].strip():
            last, dist, version = line[:indent].split()
            rows[last] = (dist, version, line[indent:])
        else:
            dist, version, text = rows[last]
            rows[last] = (dist, version, f"{text} {line.strip()}")
    return rows


async def test_plugins_lists_every_installed_type_with_its_summary(cli) -> None:
    run = await cli("plugins", env={**os.environ, "COLUMNS": "70"})
    assert run.code == 0, run.err
    rows = _table(run.out)
    assert {t: dist for t, (dist, _v, _d) in rows.items()} == _installed_channels()
    assert rows["email"][2] == "Email (SMTP): HTML notifications through any SMTP server"
    assert max(map(len, run.out.splitlines())) <= 70
    assert "failed" not in run.out


def test_the_listing_shows_each_plugins_own_description() -> None:
    """What `dbnotify plugins` shows without importing (the distribution's summary) is
    what the plugin says of itself once loaded (ChannelInfo.description)."""
    from dbnotify.plugins import PluginRegistry

    registry = PluginRegistry(environ={})
    summaries = {p.type: p.summary for p in registry.installed()}
    workspace = {p.type: p.info.description for p in registry.all() if p.distribution in WORKSPACE}
    assert workspace
    assert {t: summaries[t] for t in workspace} == workspace


LISTING_IMPORTS = """
import json, sys
from dbnotify.cli import main
main(["plugins"], standalone_mode=False)
print(json.dumps(sorted(sys.modules)))
"""
HEAVY = ("jinja2", "cattrs", "httpx", "aiosmtplib", "asyncio", "apprise", "email_validator")


def test_plugins_listing_imports_no_plugin_and_no_heavy_library() -> None:
    run = subprocess.run(
        [sys.executable, "-c", LISTING_IMPORTS], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    *listing, modules_line = run.stdout.splitlines()
    assert any(line.split()[:1] == ["email"] for line in listing)
    modules = set(json.loads(modules_line))
    plugin_modules = {
        ep.value.split(":")[0].split(".")[0]
        for ep in importlib.metadata.entry_points(group="dbnotify.channels")
    }
    assert plugin_modules
    assert sorted(m for m in modules if m.split(".")[0] in plugin_modules) == []
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == []
    assert not {"dbnotify.config.load", "dbnotify.notifier", "dbnotify.rendering"} & modules


GET_EMAIL_IMPORTS = """
import json, sys
from dbnotify.config.load import load_config
from dbnotify.plugins import default_registry
assert default_registry().get("email") is not None
load_config({"channels": {"ops-mail": {
    "type": "email", "host": "smtp.example.com", "from": "d@example.com", "to": "o@example.com"
}}})
print(json.dumps(sorted(sys.modules)))
"""


def test_using_a_channel_type_imports_that_plugin_alone() -> None:
    run = subprocess.run(
        [sys.executable, "-c", GET_EMAIL_IMPORTS], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    modules = set(json.loads(run.stdout.splitlines()[-1]))
    assert "dbnotify_email.plugin" in modules
    others = [
        m for m in modules if m.startswith("dbnotify_") and m.split(".")[0] != "dbnotify_email"
    ]
    assert sorted(others) == []  # dbnotify_webhook, dbnotify_apprise ... stay unimported
    assert "apprise" not in modules


BROKEN = 'raise RuntimeError("libfoo.so.3: cannot open shared object file")\n'


def _site_with_broken_plugin(tmp_path: Path) -> dict[str, str]:
    """A distribution dbnotify-broken 0.3 whose plugin fails at import, on PYTHONPATH."""
    site = tmp_path / "site"
    info = site / "dbnotify_broken-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dbnotify-broken\nVersion: 0.3\n"
        "Summary: Broken: fails at import\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(
        "[dbnotify.channels]\nbroken = dbn_cli_broken_plugin\n", encoding="utf-8"
    )
    (site / "dbn_cli_broken_plugin.py").write_text(BROKEN, encoding="utf-8")
    return {**os.environ, "PYTHONPATH": str(site)}


async def test_plugins_lists_a_broken_plugin_without_importing_it(cli, tmp_path: Path) -> None:
    run = await cli("plugins", env=_site_with_broken_plugin(tmp_path))
    assert run.code == 0, run.err
    assert _table(run.out)["broken"] == ("dbnotify-broken", "0.3", "Broken: fails at import")
    assert "failed" not in run.out + run.err


async def test_plugins_check_names_the_plugin_that_fails_and_exits_1(cli, tmp_path: Path) -> None:
    env = _site_with_broken_plugin(tmp_path)
    run = await cli("plugins", "--check", env=env)
    assert run.code == 1, run.out + run.err
    lines = run.out.splitlines()
    assert (
        "failed broken (dbnotify-broken 0.3): import failed: RuntimeError: libfoo.so.3: "
        "cannot open shared object file"
    ) in lines
    count = len(_installed_channels())
    assert lines[-1] == f"checked {count + 1} plugins: {count} loaded, 1 failed"
    assert _table(run.out)["email"][0] == "dbnotify-email"
    as_json = await cli("plugins", "--json", "--check", env=env)
    assert as_json.code == 1
    (failed,) = json.loads(as_json.out)["failed"]
    assert (failed["type"], failed["distribution"]) == ("broken", "dbnotify-broken")


async def test_plugins_check_passes_and_a_disabled_broken_plugin_is_not_loaded(
    cli, tmp_path: Path
) -> None:
    env = {**_site_with_broken_plugin(tmp_path), "DBNOTIFY_DISABLE_PLUGINS": "broken"}
    run = await cli("plugins", "--check", env=env)
    assert run.code == 0, run.out + run.err
    assert "skipped broken: disabled by DBNOTIFY_DISABLE_PLUGINS" in run.out.splitlines()
    assert run.out.splitlines()[-1].endswith(" loaded, 0 failed")
    listing = await cli("plugins", env=env)
    assert "skipped broken: disabled by DBNOTIFY_DISABLE_PLUGINS" in listing.out.splitlines()
    assert "broken" not in _table(listing.out)


SCRIPT = str(Path(sys.executable).with_name("dbnotify"))
"""The console script, run directly (not through asyncio, for a terminal or a closed pipe)."""


def _plugins_env(tmp_path: Path, case: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONWARNINGS")}
    if case == "narrow":
        env["COLUMNS"] = "50"
    elif case == "skips and typos":
        env.update(DBNOTIFY_DISABLE_PLUGINS="email,telegram", DBNOTIFY_PLUGINS="emial,email,ntfy")
    elif case == "nothing allowed":
        env["DBNOTIFY_PLUGINS"] = ""
    elif case == "broken plugin":
        env = {**env, **_site_with_broken_plugin(tmp_path)}
    return env


@pytest.mark.parametrize(
    "case", ["plain", "narrow", "skips and typos", "nothing allowed", "broken plugin"]
)
async def test_plugins_prints_exactly_what_the_click_command_prints(
    cli, tmp_path: Path, case: str
) -> None:
    """``dbnotify plugins`` alone is printed without click; ``-v`` (which changes only
    logging) goes through click's group and command: the same output and status."""
    env = _plugins_env(tmp_path, case)
    fast = await cli("plugins", env=env)
    through_click = await cli("-v", "plugins", env=env)
    assert (fast.code, fast.out, fast.err) == (
        through_click.code,
        through_click.out,
        through_click.err,
    )
    assert fast.code == 0
    assert fast.out.strip()
    assert "\x1b" not in fast.out  # not a terminal: no styles


def _on_a_terminal(*args: str, env: dict[str, str]) -> bytes:
    """What the command writes to a pseudo-terminal of 60 columns."""
    import fcntl
    import pty
    import struct
    import termios

    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
    proc = subprocess.Popen([SCRIPT, *args], stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0
    return out


def test_plugins_on_a_terminal_is_styled_as_click_styles_it(tmp_path: Path) -> None:
    env = _plugins_env(tmp_path, "skips and typos")
    fast = _on_a_terminal("plugins", env=env)
    assert fast == _on_a_terminal("-v", "plugins", env=env)
    assert b"\x1b[1m type" in fast  # the header in bold
    assert b"\x1b[33mwarning\x1b[0m: DBNOTIFY_PLUGINS names 'emial'" in fast
    rows = [line for line in fast.splitlines() if line.startswith(b" ")]  # the table's
    assert rows
    assert max(len(line) for line in rows) <= 60  # wrapped to the terminal's width


@pytest.mark.parametrize("args", [("plugins",), ("-v", "plugins")])
def test_plugins_into_a_closed_pipe_exits_1_quietly(args: tuple[str, ...]) -> None:
    """As click: exit 1 and nothing on stderr (no BrokenPipeError traceback)."""

    read, write = os.pipe()
    os.close(read)
    run = subprocess.run([SCRIPT, *args], stdout=write, stderr=subprocess.PIPE, timeout=60)
    os.close(write)
    assert (run.returncode, run.stderr) == (1, b"")


SCRIPT_NEVER_IMPORTS = (
    "click",
    "attrs",
    "attr",
    "pluggy",
    "importlib.metadata",
    "typing",
    "shutil",
    "dbnotify.plugins",
    "dbnotify.config",
    "dbnotify.cli.group",
    "dbnotify.cli.plugins",
    *HEAVY,
)


def test_plugins_alone_imports_neither_click_nor_the_registry() -> None:
    """The console script's ``dbnotify plugins`` (the command whose start-up the bench
    measures): what ``-X importtime`` shows it imported. No timing is asserted."""

    run = subprocess.run(
        [sys.executable, "-X", "importtime", SCRIPT, "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert any(line.split()[:1] == ["email"] for line in run.stdout.splitlines())
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "dbnotify.cli.listing" in imported
    plugin_modules = {d.value.split(":")[0].split(".")[0] for d in declared(GROUP)}
    assert (
        sorted(
            m
            for m in imported
            if m.split(".")[0] in plugin_modules
            or any(m == n or m.startswith(n + ".") for n in SCRIPT_NEVER_IMPORTS)
        )
        == []
    )


async def test_validate_accepts_a_good_file(cli, write_config, tmp_path: Path) -> None:
    path = write_config(tmp_path / "ok.toml", 2525)
    run = await cli("validate", "-c", str(path))
    assert run.code == 0
    assert run.out.strip() == f"{path}: OK; channels: ops-mail (email)"


async def test_validate_lists_every_error_and_exits_2(cli, write_config, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[channels.ops-mail]
type = "email"
host = "smtp.example.com"
port = 70000
security = "tls"
from = "not an address"
to = ["ops@example.com", "dba@"]
pasword = "s3cr3t-Pa55"

[routing]
channels = ["ops-mial"]
""",
        encoding="utf-8",
    )
    run = await cli("validate", "-c", str(path))
    assert run.code == 2
    assert run.out == ""
    lines = run.err.splitlines()
    assert lines[0] == "6 configuration errors:"
    assert "  channels.ops-mail.port: must be between 1 and 65535 (got 70000)" in lines
    assert (
        "  channels.ops-mail.security: must be one of none, ssl, starttls (got 'tls'); "
        "did you mean 'starttls' (TLS after connecting, usually port 587) or 'ssl' "
        "(TLS from the start, usually port 465)?"
    ) in lines
    assert "  channels.ops-mail.pasword: unknown key; did you mean 'password'?" in lines
    assert "  routing.channels[0]: no channel named 'ops-mial'; did you mean 'ops-mail'?" in lines
    assert any(
        line.startswith("  channels.ops-mail.to[1]: 'dba@' is not a valid email address")
        for line in lines
    )
    assert any(
        line.startswith("  channels.ops-mail.from: 'not an address' is not a valid")
        for line in lines
    )
    assert "s3cr3t-Pa55" not in run.err


async def test_validate_reports_a_missing_file(cli, write_config, tmp_path: Path) -> None:
    run = await cli("validate", "-c", str(tmp_path / "nope.toml"))
    assert run.code == 2
    assert f"configuration file '{tmp_path / 'nope.toml'}' not found" in run.err


@pytest.mark.timeout(20)
async def test_validate_refuses_a_fifo_in_templates_dir(cli, write_config, tmp_path: Path) -> None:
    """A FIFO named like a template: reading it would wait for a writer forever."""
    folder = tmp_path / "tpl"
    (folder / "parts").mkdir(parents=True)
    os.mkfifo(folder / "email.html")
    os.mkfifo(folder / "parts" / "footer.txt")
    path = write_config(
        tmp_path / "c.toml", 2525, extra=f'\n[rendering]\ntemplates_dir = "{folder}"\n'
    )
    run = await cli("validate", "-c", str(path))
    assert (run.code, run.out) == (2, "")
    assert run.err.splitlines() == [
        "2 configuration errors:",
        "  rendering.templates_dir: template file email.html is a FIFO (named pipe), not a "
        "regular file; replace it with a template file, or remove it",
        "  rendering.templates_dir: template file parts/footer.txt is a FIFO (named pipe), "
        "not a regular file; replace it with a template file, or remove it",
    ]


async def test_send_delivers_and_prints_per_recipient(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = write_config(tmp_path / "c.toml", smtp.port, to='"ops@example.com; dba@example.com"')
    run = await cli(
        "send",
        "backup_failure",
        "-c",
        str(path),
        "--data",
        "job_name=nightly-pg",
        "--data",
        "error=disk full",
    )
    assert run.code == 0, run.out + run.err
    assert "  ops-mail [channel] ops@example.com: delivered" in run.out.splitlines()
    assert "  ops-mail [channel] dba@example.com: delivered" in run.out.splitlines()
    [received] = smtp.messages
    assert received.rcpt_tos == ("ops@example.com", "dba@example.com")
    assert received.message["Subject"] == "[DBackup] Backup Failed: nightly-pg"
    assert "Backup job 'nightly-pg' failed. Error: disk full" in received.part("plain")


async def test_send_delivers_bytes_that_are_not_utf8_with_a_visible_marker(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    """argv bytes that are not UTF-8 (a file name, say) do not stop the delivery."""
    path = write_config(tmp_path / "c.toml", smtp.port)
    run = await cli(
        "send",
        "backup_failure",
        "-c",
        str(path),
        "--data",
        "job_name=nightly",
        "--data",
        b"error=Empf\xe4nger unbekannt",
    )
    assert run.code == 0, run.out + run.err
    assert "Traceback" not in run.err
    [received] = smtp.messages
    assert "Error: Empf\ufffdnger unbekannt" in received.part("plain")
    assert "Empf\ufffdnger unbekannt" in received.part("html")


async def test_send_exits_1_when_a_recipient_is_refused(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    smtp.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    path = write_config(
        tmp_path / "c.toml", smtp.port, to='["ops@example.com", "gone@example.com"]'
    )
    run = await cli(
        "send",
        "system_error",
        "-c",
        str(path),
        "--data",
        "component=scheduler",
        "--data",
        "error=stalled",
    )
    assert run.code == 1
    lines = run.out.splitlines()
    assert "  ops-mail [channel] ops@example.com: delivered" in lines
    assert (
        "  ops-mail [channel] gone@example.com: failed (permanent) - the server refused "
        "this recipient - server said: 550 5.1.1 no such user"
    ) in lines
    assert smtp.messages[0].rcpt_tos == ("ops@example.com",)


async def test_send_reports_connection_refused_with_the_seed_hints(
    cli, write_config, tmp_path: Path, closed_port: int
) -> None:
    path = write_config(tmp_path / "c.toml", closed_port)
    run = await cli("send", "test", "-c", str(path))
    assert run.code == 1
    assert (
        f"  ops-mail [channel] ops@example.com: failed (transient) - Connection refused "
        f"to smtp server 127.0.0.1:{closed_port}"
    ) in run.out.splitlines()
    assert "hint: check the SMTP host and port; check that a firewall allows" in run.out


async def test_send_with_missing_event_data_exits_2(cli, write_config, tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", 2525)
    run = await cli("send", "backup_success", "-c", str(path))
    assert run.code == 2
    assert run.err.strip() == "error: event 'backup_success' needs data key(s) job_name (got: none)"


async def test_send_user_copy_goes_to_the_user_alone(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = write_config(
        tmp_path / "c.toml",
        smtp.port,
        extra="""
[routing.events.user_login]
enabled = true
notify_user = "only"
""",
    )
    run = await cli(
        "send",
        "user_login",
        "-c",
        str(path),
        "--data",
        "user_name=alice",
        "--data",
        "email=alice@example.com",
    )
    assert run.code == 0, run.out + run.err
    assert run.out.splitlines()[1:] == ["  ops-mail [user copy] alice@example.com: delivered"]
    [received] = smtp.messages
    assert received.rcpt_tos == ("alice@example.com",)
    assert received.message["To"] == "alice@example.com"
    assert "ops@example.com" not in received.data.decode()


async def test_send_of_a_disabled_event_says_why(cli, write_config, tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", 2525)
    run = await cli(
        "send",
        "user_login",
        "-c",
        str(path),
        "--data",
        "user_name=a",
        "--data",
        "email=a@example.com",
    )
    assert run.code == 0
    assert (
        "  not sent: event 'user_login' is disabled; set routing.events.user_login.enabled"
        " = true to send it"
    ) in run.out.splitlines()


async def test_test_command_reports_stages_and_sends(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = write_config(tmp_path / "c.toml", smtp.port)
    run = await cli("test", "ops-mail", "-c", str(path))
    assert run.code == 0, run.out
    stages = [line.split()[:2] for line in run.out.splitlines() if line.startswith("  ok")]
    assert stages == [
        ["ok", "resolve"],
        ["ok", "connect"],
        ["ok", "greeting"],
        ["ok", "ehlo"],
        ["ok", "auth"],
        ["ok", "send"],
    ]
    assert "  ok   auth" in run.out
    assert "skipped: no user configured" in run.out
    assert run.out.splitlines()[-1] == "test of channel 'ops-mail' passed"
    assert smtp.messages[0].message["Subject"] == "[DBackup] Test Notification"


async def test_test_command_no_send_sends_nothing(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = write_config(tmp_path / "c.toml", smtp.port)
    run = await cli("test", "ops-mail", "-c", str(path), "--no-send")
    assert run.code == 0
    assert smtp.messages == []


async def test_test_command_never_shows_the_password(cli, write_config, tmp_path: Path) -> None:
    async with LocalSMTPServer(credentials={"dbackup": "right"}) as server:
        path = write_config(
            tmp_path / "c.toml",
            server.port,
            auth="""
user = "dbackup"
password = "wr0ng-Pa55word"
allow_plaintext_auth = true
""",
        )
        run = await cli("test", "ops-mail", "-c", str(path))
    assert run.code == 1
    assert "FAIL auth" in run.out
    assert "Invalid login credentials" in run.out
    assert "App Password" in run.out
    assert "wr0ng-Pa55word" not in run.out + run.err


async def test_render_text_html_and_eml(cli) -> None:
    args = (
        "backup_failure",
        "--data",
        "job_name=nightly-pg",
        "--data",
        "error=<img src=x onerror=alert(1)>",
    )
    text = await cli("render", *args, "--format", "text")
    assert text.code == 0
    assert text.out.startswith("Subject: [DBackup] Backup Failed: nightly-pg\n\nBackup Failed\n")
    assert "Error: <img src=x onerror=alert(1)>" in text.out
    html = await cli("render", *args, "--format", "html")
    assert html.out.startswith("<!DOCTYPE html>")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html.out
    assert "<img" not in html.out
    eml = await cli("render", *args, "--format", "eml")
    msg = email.message_from_string(eml.out, policy=email.policy.default)
    assert msg["Subject"] == "[DBackup] Backup Failed: nightly-pg"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"


async def test_render_a_custom_event(cli) -> None:
    run = await cli(
        "render",
        "disk_low",
        "--title",
        "Disk Almost Full",
        "--message",
        "Only 3% left on /backups.",
        "--severity",
        "warning",
        "--data",
        "free=3%",
    )
    assert run.code == 0
    assert run.out.startswith("Subject: [DBackup] Disk Almost Full\n")
    assert "Free: 3%" in run.out


@pytest.mark.timeout(120)
async def test_demo_delivers_one_of_each_event(cli, write_config, tmp_path: Path) -> None:
    out = tmp_path / "mail"
    run = await cli("demo", "--out", str(out))
    assert run.code == 0, run.out + run.err
    emls = sorted(p.name for p in out.glob("*.eml"))
    htmls = sorted(p.name for p in out.glob("*.html"))
    assert len(emls) == 11  # nine events, plus a user copy for login and account creation
    assert [n.replace(".eml", ".html") for n in emls] == htmls
    events = {n.split("-", 1)[1].removesuffix(".eml").removesuffix("-user") for n in emls}
    assert sorted(n.split("-", 1)[1] for n in emls if n.endswith("-user.eml")) == [
        "user_created-user.eml",
        "user_login-user.eml",
    ]
    assert events == {
        "backup_success",
        "backup_failure",
        "restore_complete",
        "restore_failure",
        "config_backup",
        "system_error",
        "user_login",
        "user_created",
        "test",
    }
    assert "11 messages written to" in run.out
    assert "user_login (user copy)" in run.out
    failure = (out / next(n for n in htmls if "backup_failure" in n)).read_text()
    assert "#dc2626" in failure


async def test_demo_without_the_email_channel_says_so(cli, tmp_path: Path) -> None:
    """The demo finds its email channel through the registry, like any configuration."""
    env = {**os.environ, "DBNOTIFY_DISABLE_PLUGINS": "email"}
    run = await cli("demo", "--out", str(tmp_path / "mail"), env=env)
    assert run.code == 2
    assert run.err == (
        "error: the demo needs the email channel: channel type 'email' is disabled by "
        "DBNOTIFY_DISABLE_PLUGINS\n"
    )
    assert not (tmp_path / "mail").exists()


async def test_user_event_without_address_notifies_admins_and_records_the_skip(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    path = write_config(
        tmp_path / "c.toml",
        smtp.port,
        extra="""
[routing.events.user_login]
enabled = true
notify_user = "also"
""",
    )
    run = await cli("send", "user_login", "-c", str(path), "--data", "user_name=alice")
    assert run.code == 0, run.out + run.err
    assert run.out.splitlines()[1:] == [
        "  ops-mail [channel] ops@example.com: delivered",
        "  ops-mail [user copy] (user): skipped - event 'user_login' has no user email "
        "address (data key 'email')",
    ]
    assert [m.rcpt_tos for m in smtp.messages] == [("ops@example.com",)]


async def test_render_takes_the_timestamp_and_shows_it_in_the_configured_zone(
    cli, tmp_path: Path
) -> None:
    path = tmp_path / "tz.toml"
    path.write_text('[rendering]\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    run = await cli("render", "test", "-c", str(path), "--data", "timestamp=2026-11-24T05:00:00Z")
    assert run.code == 0, run.err
    assert run.out.rstrip().endswith("2026-11-24 06:00:00 CET · Sent by DBackup")
    naive = await cli("render", "test", "--data", "timestamp=2026-11-24T05:00:00")
    assert naive.code == 2
    assert "timestamp must carry a time zone (e.g. datetime.now(UTC))" in naive.err


async def test_render_and_test_report_a_template_that_fails_at_render_time(
    cli, write_config, tmp_path: Path, smtp: LocalSMTPServer
) -> None:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "subject.txt").write_text("{{ tittle }}", encoding="utf-8")
    path = write_config(
        tmp_path / "c.toml", smtp.port, extra=f'\n[rendering]\ntemplates_dir = "{folder}"\n'
    )
    run = await cli("render", "test", "-c", str(path))
    assert run.code == 2
    assert run.err.strip() == "error: rendering failed: template error: 'tittle' is undefined"
    assert "Traceback" not in run.err
    tested = await cli("test", "ops-mail", "-c", str(path))
    assert tested.code == 1
    assert "FAIL render" in tested.out
    assert "rendering failed: template error: 'tittle' is undefined" in tested.out
    assert "bug in" not in tested.out


async def test_send_refuses_a_user_email_the_event_would_ignore(cli, tmp_path: Path) -> None:
    run = await cli(
        "send", "backup_failure", "-c", str(tmp_path / "c.toml"), "--user-email", "a@x.org"
    )
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "error: --user-email is for events that concern a user (user_login, user_created); "
        "backup_failure is not one\n"
    )


async def test_send_exits_1_when_no_channel_is_configured_for_the_event(
    cli, tmp_path: Path
) -> None:
    """Nothing to do by a rule (a disabled event) is 0; nowhere to go at all is 1."""
    path = tmp_path / "c.toml"
    path.write_text("[routing.events.test]\nenabled = false\n", encoding="utf-8")
    disabled = await cli("send", "test", "-c", str(path))
    assert disabled.code == 0
    assert "not sent: event 'test' is disabled" in disabled.out
    nowhere = await cli("send", "backup_failure", "-c", str(path), "-d", "job_name=j")
    assert nowhere.code == 1
    assert (
        "not sent: no channels for event 'backup_failure'; set routing.channels, or "
        "routing.events.backup_failure.channels"
    ) in nowhere.out
