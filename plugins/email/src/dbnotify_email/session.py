"""One SMTP connection, opened the way the configuration says and no weaker.

Stage by stage: resolve the host, connect to each of its addresses in turn (each
bounded), TLS and greeting, EHLO, STARTTLS (required when the configuration says
starttls: a server that does not offer it is a possible downgrade, and nothing more is
sent), AUTH. The same code serves ``send`` and ``test``; ``test`` passes a
:class:`StageLog` to see each stage.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosmtplib
import attrs

from dbnotify.channel import FailureKind, TestStage
from dbnotify_email import wire
from dbnotify_email.errors import Failure, classify
from dbnotify_email.masking import remember_token
from dbnotify_email.outgoing import Outgoing
from dbnotify_email.settings import (
    AuthMethod,
    EmailConfig,
    Security,
    load_client_cert,
    verifying_context,
)
from dbnotify_email.tokens import TokenError

log = logging.getLogger(__name__)
T = TypeVar("T")

TLS_NOT_VERIFIED = "certificate NOT verified (tls_verify = false): anyone in between can read"


class StageFailed(Exception):
    """A stage failed; carries the stage's name and what it means to the operator."""

    def __init__(self, stage: str, failure: Failure) -> None:
        super().__init__(f"{stage}: {failure.reason}")
        self.stage = stage
        self.failure = failure


@attrs.define
class StageLog:
    """What ``dbnotify test`` shows: every stage, its time, and on failure reply and hint."""

    stages: list[TestStage] = attrs.field(factory=list)
    last: float = attrs.field(factory=time.monotonic)
    """When the latest stage ended (or the log began): a stage cut short by the deadline
    took the time since then."""

    def add(self, stage: TestStage) -> None:
        self.stages.append(stage)
        self.last = time.monotonic()

    def ok(self, name: str, detail: str, started: float) -> None:
        self.add(TestStage(name, True, detail, time.monotonic() - started))

    def failed(self, name: str, failure: Failure, started: float) -> None:
        reason = failure.reason + (f" (server said: {failure.reply})" if failure.reply else "")
        self.add(TestStage(name, False, reason, time.monotonic() - started, failure.hint))

    def cut_short(self, detail: str, hint: str) -> None:
        """The ``deadline`` stage: what was under way when the deadline ran out, timed."""
        self.add(TestStage("deadline", False, detail, time.monotonic() - self.last, hint))


_HANDSHAKE = 22
_CERTIFICATE_REQUEST = 13


@attrs.define
class CertificateRequest:
    """Whether the server asked for a client certificate in the TLS handshake.

    A server that requires one and gets none (or one it does not trust) just closes the
    connection after the handshake, which reads like a network fault; knowing it asked
    turns that into a permanent failure that names the certificate.
    """

    seen: bool = False

    def watch(self, context: ssl.SSLContext) -> None:
        """Listen to the handshake through CPython's message callback (what TLS key-log
        and debugging tools use): only the message types are read."""

        def callback(
            _conn: object,
            direction: str,
            _version: object,
            content_type: int,
            msg_type: int,
            _data: bytes,
        ) -> None:
            if (
                direction == "read"
                and content_type == _HANDSHAKE
                and msg_type == _CERTIFICATE_REQUEST
            ):
                self.seen = True

        setattr(context, "_msg_callback", callback)  # noqa: B010 - not in typeshed

    def failure(self, exc: BaseException, failure: Failure, config: EmailConfig) -> Failure:
        """``failure``, or the client certificate's when the server asked for one and
        then hung up (not a reply, not a timeout, not its own certificate refused)."""
        if not self.seen or isinstance(
            exc, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPTimeoutError | TimeoutError
        ):
            return failure
        if isinstance(exc.__cause__ or exc, ssl.SSLCertVerificationError):
            return failure
        if config.tls_client_cert is None:
            return Failure(
                FailureKind.PERMANENT,
                "the server asked for a client certificate (mutual TLS) and closed the "
                "connection without one",
                hint="set tls_client_cert (and tls_client_key) to a certificate this "
                "server accepts",
            )
        return Failure(
            FailureKind.PERMANENT,
            "the server asked for a client certificate (mutual TLS) and closed the "
            "connection: it did not accept tls_client_cert",
            hint="check that tls_client_cert is signed by a CA the server trusts, is not "
            "expired, and is the one issued for this client",
        )


def tls_context(config: EmailConfig) -> ssl.SSLContext:
    """Verifying by default; client certificate; the opt-out only when written out."""
    context = verifying_context(config.tls_ca_file)
    if config.tls_client_cert is not None:
        load_client_cert(context, config.tls_client_cert, config.tls_client_key)
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@attrs.define(eq=False)
class Handoff:
    """The next message waiting for a connection to this server.

    Its first commands go out with the end of data of the message being sent (RFC 2920),
    and ``give`` hands it the connection once that message's own reply is read: one
    round trip a message instead of two.
    """

    message: Outgoing
    give: Callable[[Session], None]


@attrs.define
class Session:
    """An open, greeted, (TLS-)secured and authenticated SMTP connection."""

    smtp: aiosmtplib.SMTP
    config: EmailConfig
    opened: float = attrs.field(factory=time.monotonic)
    last_used: float = attrs.field(factory=time.monotonic)
    broken: bool = False
    exchange: wire.Exchange = attrs.field(init=False)
    next_in_line: Callable[[], Handoff | None] | None = None
    """Set by the pool while a message is sent: claims the next message waiting for a
    connection, if any (it then must be given the connection, whatever happens)."""

    def __attrs_post_init__(self) -> None:
        self.exchange = wire.Exchange(self.smtp, self.config.timeout)

    @property
    def smtputf8(self) -> bool:
        return self.smtp.supports_extension("smtputf8")

    @property
    def pipelining(self) -> bool:
        """RFC 2920: the server reads a group of commands written at once."""
        return self.smtp.supports_extension("pipelining")

    @property
    def usable(self) -> bool:
        return not self.broken and self.smtp.is_connected

    async def close(self) -> None:
        """QUIT politely when there is time; close at once when cancelled or broken."""
        task = asyncio.current_task()
        if self.broken or not self.smtp.is_connected or (task is not None and task.cancelling()):
            self.smtp.close()
            return
        try:
            await asyncio.wait_for(self.smtp.quit(), timeout=min(self.config.timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.smtp.close()


async def _stage(
    log_: StageLog | None,
    name: str,
    config: EmailConfig,
    action: Callable[[], Awaitable[T]],
    detail: Callable[[T], str],
    asked: CertificateRequest | None = None,
) -> T:
    started = time.monotonic()
    try:
        result = await action()
    except StageFailed as exc:
        if log_ is not None:
            log_.failed(name, exc.failure, started)
        raise
    except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
        failure = classify(exc, config, stage=name)
        if asked is not None:
            failure = asked.failure(exc, failure, config)
        if log_ is not None:
            log_.failed(name, failure, started)
        raise StageFailed(name, failure) from exc
    if log_ is not None:
        log_.ok(name, detail(result), started)
    return result


async def resolve(config: EmailConfig) -> list[tuple[int, Any]]:
    """Every address of the host, IPv6 and IPv4, in the resolver's order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(config.host, config.effective_port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        permanent = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
        raise StageFailed(
            "resolve",
            Failure(
                FailureKind.PERMANENT if permanent else FailureKind.TRANSIENT,
                f"unknown host {config.host!r}"
                if permanent
                else f"cannot resolve host {config.host!r} now (temporary DNS failure)",
                hint="check the host setting"
                if permanent
                else "check this machine's DNS; try again later (with an outbox, dbnotify "
                "retries by itself)",
            ),
        ) from None
    seen: list[tuple[int, Any]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if (family, sockaddr) not in seen:
            seen.append((family, sockaddr))
    return seen


async def connect_any(config: EmailConfig, addresses: list[tuple[int, Any]]) -> socket.socket:
    """The first address that accepts, each tried for at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    problems: list[str] = []
    refused = timed_out = 0
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), config.timeout)
        except TimeoutError:
            sock.close()
            timed_out += 1
            problems.append(f"{sockaddr[0]}: timed out")
            continue
        except OSError as exc:
            sock.close()
            refused += isinstance(exc, ConnectionRefusedError)
            problems.append(f"{sockaddr[0]}: {exc.strerror or exc}")
            continue
        return sock
    where = f"{config.host}:{config.effective_port}"
    detail = "" if len(addresses) == 1 else f" (tried {'; '.join(problems)})"
    if refused == len(addresses):
        raise StageFailed("connect", refused_failure(where + detail))
    if timed_out == len(addresses):
        raise StageFailed("connect", timeout_failure(where + detail))
    raise StageFailed(
        "connect",
        Failure(
            FailureKind.TRANSIENT,
            f"cannot connect to {where}: {'; '.join(problems)}",
            hint=refused_failure(where).hint,
        ),
    )


def refused_failure(where: str) -> Failure:
    from dbnotify_email.errors import HINT_REFUSED

    return Failure(
        FailureKind.TRANSIENT, f"Connection refused to smtp server {where}", hint=HINT_REFUSED
    )


def timeout_failure(where: str) -> Failure:
    from dbnotify_email.errors import HINT_TIMEOUT

    return Failure(FailureKind.TRANSIENT, f"Connection timed out ({where})", hint=HINT_TIMEOUT)


def tls_detail(smtp: aiosmtplib.SMTP, config: EmailConfig) -> str:
    transport = smtp.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    if ssl_object is None:
        return "no TLS"
    if not config.tls_verify:
        return f"{ssl_object.version()}; {TLS_NOT_VERIFIED}"
    cert = ssl_object.getpeercert() or {}
    subject = dict(x[0] for x in cert.get("subject", ())).get("commonName")
    sans = [v for k, v in cert.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
    who = subject or (sans[0] if sans else "?")
    return f"{ssl_object.version()}, certificate for {who}, expires {cert.get('notAfter', '?')}"


async def open_session(config: EmailConfig, log_: StageLog | None = None) -> Session:
    """Open a connection ready for MAIL FROM, or raise :class:`StageFailed`."""
    if not config.tls_verify and config.security is not Security.NONE:
        log.warning("email to %s: %s", config.host, TLS_NOT_VERIFIED)
    addresses = await _stage(
        log_,
        "resolve",
        config,
        lambda: resolve(config),
        lambda found: f"{config.host} -> {', '.join(str(a[1][0]) for a in found)}",
    )
    sock = await _stage(
        log_,
        "connect",
        config,
        lambda: connect_any(config, addresses),
        lambda s: f"{s.getpeername()[0]} port {config.effective_port}",
    )
    started = time.monotonic()
    try:
        context = tls_context(config) if config.security is not Security.NONE else None
    except ValueError as exc:
        sock.close()
        text = str(exc)
        failure = Failure(
            FailureKind.PERMANENT,
            text
            if text.startswith(("tls_client_cert", "tls_client_key"))
            else f"tls_ca_file: {text}",
            hint="point it at a readable PEM file",
        )
        if log_ is not None:
            log_.failed("tls", failure, started)
        raise StageFailed("tls", failure) from None
    asked = CertificateRequest()
    if context is not None:
        asked.watch(context)
    smtp = aiosmtplib.SMTP(
        hostname=config.host,
        sock=sock,
        use_tls=config.security is Security.SSL,
        start_tls=False,  # done below, required, never opportunistic
        validate_certs=config.tls_verify,
        tls_context=context,
        timeout=config.timeout,
        local_hostname=config.local_hostname,
    )
    try:
        if config.security is Security.SSL:
            greeting = await _stage(
                log_,
                "tls",
                config,
                smtp.connect,
                lambda reply: (
                    f"{tls_detail(smtp, config)}; greeting {reply.code} "
                    f"{' '.join(reply.message.split())[:80]}"
                ),
                asked,
            )
        else:
            greeting = await _stage(
                log_,
                "greeting",
                config,
                smtp.connect,
                lambda reply: f"{reply.code} {' '.join(reply.message.split())[:80]}",
                asked,
            )
        del greeting
        await _stage(log_, "ehlo", config, smtp.ehlo, lambda _r: _capabilities(smtp), asked)
        if config.security is Security.STARTTLS:
            await _stage(
                log_,
                "tls",
                config,
                lambda: _starttls(smtp, config),
                lambda _r: f"STARTTLS: {tls_detail(smtp, config)}",
                asked,
            )
        if config.authenticates:
            await _stage(
                log_,
                "auth",
                config,
                lambda: _login(smtp, config),
                lambda method: f"logged in as {config.user} ({method})",
                asked,
            )
        elif log_ is not None:
            log_.add(TestStage("auth", True, "skipped: no user configured"))
    except BaseException:
        smtp.close()
        raise
    return Session(smtp, config)


def _capabilities(smtp: aiosmtplib.SMTP) -> str:
    names = sorted(smtp.esmtp_extensions)
    auth = smtp.server_auth_methods
    return "capabilities: " + (
        ", ".join(
            n.upper() + (f" ({' '.join(auth).upper()})" if n == "auth" else "") for n in names
        )
        or "none (HELO only)"
    )


async def _starttls(smtp: aiosmtplib.SMTP, config: EmailConfig) -> None:
    if not smtp.supports_extension("starttls"):
        raise StageFailed(
            "tls",
            Failure(
                FailureKind.PERMANENT,
                "STARTTLS was required but the server did not offer it: possible downgrade",
                hint="the server (or something between) hides STARTTLS; dbnotify sends "
                "nothing more over a plain connection when security is starttls; use ssl "
                "if the server supports it",
            ),
        )
    await smtp.starttls()
    await smtp.ehlo()


async def _login(smtp: aiosmtplib.SMTP, config: EmailConfig) -> str:
    if smtp.get_transport_info("sslcontext") is None and not config.allow_plaintext_auth:
        raise StageFailed(
            "auth",
            Failure(
                FailureKind.PERMANENT,
                "refusing to send the password over a connection without TLS",
                hint='use security = "starttls" or "ssl"',
            ),
        )
    offered = smtp.server_auth_methods
    method = config.auth
    if method is AuthMethod.XOAUTH2:
        assert config.oauth2_token is not None
        assert config.user is not None
        try:
            token = await config.oauth2_token.read()
        except TokenError as exc:
            raise StageFailed(
                "auth",
                Failure(
                    FailureKind.TRANSIENT,
                    str(exc),
                    hint="check that the token source works for the user dbnotify runs as",
                ),
            ) from None
        remember_token(config, token)
        _require_offered(smtp, "xoauth2", offered)
        await smtp.auth_xoauth2(config.user, token.reveal())
        return "XOAUTH2"
    assert config.user is not None
    assert config.password is not None
    if method is AuthMethod.AUTO:
        if not smtp.supports_extension("auth"):
            raise StageFailed(
                "auth",
                Failure(
                    FailureKind.PERMANENT,
                    "the server does not offer AUTH"
                    + (
                        " over a plain connection"
                        if smtp.get_transport_info("sslcontext") is None
                        else ""
                    ),
                    hint="remove user and password if this server needs no login; otherwise "
                    "check the security setting (many servers offer AUTH only over TLS)",
                ),
            )
        # One attempt with the best mechanism offered: trying the next one after a 535
        # would count twice against the account's lockout limit.
        best = next((m for m in AUTO_ORDER if m.value in offered), None)
        if best is None:
            raise StageFailed(
                "auth",
                Failure(
                    FailureKind.PERMANENT,
                    "the server offers no AUTH mechanism dbnotify speaks"
                    f" (it offers: {', '.join(m.upper() for m in offered) or 'none'})",
                    hint='set auth = "xoauth2" if this is Microsoft 365 or Gmail with OAuth',
                ),
            )
        method = best
    name: str = method.value
    _require_offered(smtp, name, offered)
    action = {
        AuthMethod.PLAIN: smtp.auth_plain,
        AuthMethod.LOGIN: smtp.auth_login,
        AuthMethod.CRAM_MD5: smtp.auth_crammd5,
    }[method]
    await action(config.user, config.password.reveal())
    return name.upper()


AUTO_ORDER = (AuthMethod.CRAM_MD5, AuthMethod.PLAIN, AuthMethod.LOGIN)
"""auth = "auto": the first of these the server offers (CRAM-MD5 keeps the password off
the wire; PLAIN is one round trip)."""


def _require_offered(smtp: aiosmtplib.SMTP, name: str, offered: list[str]) -> None:
    if name not in offered:
        raise StageFailed(
            "auth",
            Failure(
                FailureKind.PERMANENT,
                f"the server does not offer AUTH {name.upper()}"
                + (f" (it offers: {', '.join(m.upper() for m in offered)})" if offered else ""),
                hint='the server does not offer OAuth; use user and password (auth = "auto")'
                if name == "xoauth2"
                else 'set auth = "auto", or one of the mechanisms it offers',
            ),
        )
