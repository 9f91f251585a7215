"""A real Debian Postfix on 127.0.0.1, as a throwaway instance of its own.

``nox -s postfix`` runs these tests. The instance lives in a temp dir (its own
config_directory, queue_directory, data_directory and mailboxes), listens on one random
port on 127.0.0.1 only, offers STARTTLS with a certificate from a throwaway ``trustme`` CA,
and delivers to Maildirs on disk through virtual(8). It cannot send anything anywhere
else: its master.cf has no SMTP client at all, every non-local transport is ``error``,
and smtpd refuses any recipient outside ``dbnotify.example``, even from 127.0.0.1.

Needs root (``postfix start``) and the Debian package (``apt-get install postfix``, for
its programs and its ``postfix`` user and ``postdrop`` group). Without them the tests
skip, or fail when ``CI`` is set: CI must never skip them silently.

``pytest tests`` (the integration session) leaves this folder alone: it is collected only
when named on the command line (``pytest tests/postfix``), as its nox session does.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import NoReturn

import attrs
import pytest
import trustme

HERE = Path(__file__).resolve().parent
DOMAIN = "dbnotify.example"
MAILBOXES = ("ops", "oncall", "dbackup", "postmaster")
"""Every address of the domain that has a Maildir (bounces land in dbackup/postmaster)."""

# One line per service: no smtp/lmtp client, no pickup, no pipe; nothing chrooted (the
# chroot would need copies of system files in the queue dir).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
virtual    unix  - n n -     - virtual
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
"""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect this folder only when it (or a file in it) is named on the command line."""
    for arg in config.args:
        named = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if named == HERE or HERE in named.parents:
            return None
    return True


def unavailable(reason: str) -> NoReturn:
    """Skip, except under CI, where a test that cannot run is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: this test must run, not skip)", pytrace=False)
    pytest.skip(reason)


def find_postfix() -> str:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("postfix", path=search)
    if found is None:
        unavailable("postfix not installed: apt-get install postfix")
    if os.geteuid() != 0:
        unavailable("starting a Postfix instance needs root")
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        unavailable("no 'postfix' user: install Debian's postfix package")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class PostfixInstance:
    postfix: str
    root: Path
    ca: trustme.CA
    port: int = 0

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def ca_pem(self) -> Path:
        return self.root / "ca.pem"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def log_file(self) -> Path:
        return self.root / "maillog"

    def log(self) -> str:
        """Postfix's own log, for assertion messages."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no maillog)"

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.postfix, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"postfix {' '.join(args)} exited {done.returncode}: "
                f"{done.stdout}{done.stderr}\n--- maillog ---\n{self.log()}"
            )
        return done

    def postconf(self, **settings: str) -> None:
        postconf = str(Path(self.postfix).with_name("postconf"))
        subprocess.run(
            [postconf, "-c", str(self.config_dir), "-e"]
            + [f"{key}={value}" for key, value in settings.items()],
            check=True,
            timeout=60,
        )

    def configure(self) -> None:
        nobody = pwd.getpwnam("nobody")
        postfix_user = pwd.getpwnam("postfix")
        for sub in ("etc", "spool", "data", "mail"):
            (self.root / sub).mkdir(mode=0o755)
        os.chown(self.root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        os.chmod(self.root / "data", 0o700)
        os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
        os.chmod(self.mail_dir, 0o700)

        server = self.ca.issue_cert("localhost", "127.0.0.1")
        chain = self.root / "server.pem"
        server.private_key_and_cert_chain_pem.write_to_path(str(chain))
        os.chmod(chain, 0o600)
        self.ca.cert_pem.write_to_path(str(self.ca_pem))

        maps = self.config_dir / "vmailbox"
        maps.write_text("".join(f"{box}@{DOMAIN} {box}/\n" for box in MAILBOXES))
        (self.config_dir / "main.cf").write_text("")
        self.postconf(
            compatibility_level="3.6",
            queue_directory=str(self.root / "spool"),
            data_directory=str(self.root / "data"),
            maillog_file=str(self.log_file),
            maillog_file_prefixes=str(self.root),
            myhostname=f"mx.{DOMAIN}",
            mydomain=DOMAIN,
            myorigin=DOMAIN,
            # only 127.0.0.1 (the listener in master.cf names it too)
            inet_interfaces="loopback-only",
            inet_protocols="ipv4",
            mynetworks="127.0.0.0/8",
            smtpd_peername_lookup="no",
            # nothing leaves: no relay host, every transport but virtual is an error,
            # and smtpd refuses other domains even from mynetworks
            relayhost="",
            default_transport="error:mail outside dbnotify.example is disabled",
            relay_transport="error:relaying is disabled",
            local_transport="error:local delivery is disabled",
            smtpd_relay_restrictions="reject_unauth_destination",
            mydestination="",
            alias_maps="",
            alias_database="",
            biff="no",
            # delivery: Maildirs under mail/, written as nobody
            virtual_mailbox_domains=DOMAIN,
            virtual_mailbox_maps=f"texthash:{maps}",
            virtual_mailbox_base=str(self.mail_dir),
            virtual_uid_maps=f"static:{nobody.pw_uid}",
            virtual_gid_maps=f"static:{nobody.pw_gid}",
            # STARTTLS offered, and said in the Received: header
            smtpd_tls_security_level="may",
            smtpd_tls_chain_files=str(chain),
            smtpd_tls_received_header="yes",
            smtpd_tls_loglevel="1",
        )

    def start(self) -> None:
        for _attempt in range(3):
            self.port = free_port()
            (self.config_dir / "master.cf").write_text(MASTER_CF.format(port=self.port))
            done = self.ctl("start", check=False)
            if done.returncode == 0:
                return
            if "in use" not in self.log():  # another process took the port: try another
                break
        raise AssertionError(
            f"postfix start exited {done.returncode}: {done.stdout}{done.stderr}\n"
            f"--- maillog ---\n{self.log()}"
        )

    def stop(self) -> None:
        if self.ctl("status", check=False).returncode != 0:
            return
        self.ctl("stop", check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.ctl("status", check=False).returncode != 0:
                return
            time.sleep(0.2)
        self.ctl("abort", check=False)

    def messages(self, mailbox: str) -> list[Path]:
        new = self.mail_dir / mailbox / "new"
        return sorted(new.iterdir()) if new.is_dir() else []

    async def wait_for_mail(self, mailbox: str, within: float = 30.0) -> EmailMessage:
        """The one message delivered to ``mailbox@dbnotify.example``, polling up to ``within`` s."""
        deadline = time.monotonic() + within
        while not (found := self.messages(mailbox)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"nothing delivered to {mailbox}@{DOMAIN} within {within:g}s\n"
                    f"--- maillog ---\n{self.log()}"
                )
            await asyncio.sleep(0.2)
        assert len(found) == 1, f"{len(found)} messages in {mailbox}/new, expected 1"
        return parse(found[0])


def parse(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixInstance]:
    """A running Postfix on 127.0.0.1:``.port``; its CA is at ``.ca_pem``."""
    program = find_postfix()
    root = Path(tempfile.mkdtemp(prefix="dbnotify-postfix-"))
    os.chmod(root, 0o711)  # virtual(8) delivers as nobody: it must reach mail/
    instance = PostfixInstance(program, root, trustme.CA())
    try:
        instance.configure()
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)
