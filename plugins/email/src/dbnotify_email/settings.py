"""The email channel's configuration block."""

from __future__ import annotations

import enum
import re
import ssl
from typing import Any

import attrs

from dbnotify.channel import (
    InvalidField,
    Secret,
    describe_value,
    did_you_mean,
    in_range,
    make_converter,
    positive,
    regular_file_problem,
    setting,
)
from dbnotify_email.addresses import (
    ADDRESS_LIST_SCHEMA,
    MAILBOX_SCHEMA,
    AddressList,
    Mailbox,
    structure_address_list,
    structure_mailbox,
)
from dbnotify_email.tokens import TOKEN_SOURCE_SCHEMA, TokenSource, structure_token_source


class Security(enum.Enum):
    NONE = "none"
    SSL = "ssl"
    STARTTLS = "starttls"


DEFAULT_PORTS = {Security.STARTTLS: 587, Security.SSL: 465, Security.NONE: 25}


class AuthMethod(enum.Enum):
    AUTO = "auto"
    """The best the server offers of CRAM-MD5, PLAIN, LOGIN."""
    PLAIN = "plain"
    LOGIN = "login"
    CRAM_MD5 = "cram-md5"
    XOAUTH2 = "xoauth2"
    """OAuth 2 bearer token (Microsoft 365, Gmail), from ``oauth2_token``."""


_TLS_WORDS = frozenset({"tls", "ssl/tls", "tls/ssl"})


def _security(value: Any, _cl: Any) -> Security:
    """Like the core's enum hook, with the suggestions people need for this one.

    Mail clients call implicit TLS "SSL/TLS" and STARTTLS "TLS" (or the reverse), and the
    docs write "SSL" and "STARTTLS": say which value each of those means here.
    """
    if isinstance(value, Security):
        return value
    choices = [s.value for s in Security]
    hint = ""
    if isinstance(value, str):
        if value in choices:
            return Security(value)
        word = value.strip().lower()
        if word in choices:
            hint = f"; did you mean {word!r}?"
        elif word in _TLS_WORDS:
            hint = (
                "; did you mean 'starttls' (TLS after connecting, usually port 587) or "
                "'ssl' (TLS from the start, usually port 465)?"
            )
        else:
            hint = did_you_mean(word, choices)
    raise ValueError(f"must be one of {', '.join(choices)} (got {describe_value(value)})" + hint)


CONVERTER = make_converter()
"""This channel's own converter: the core's hooks, and these for its own types."""
CONVERTER.register_structure_hook(Security, _security)
CONVERTER.register_structure_hook(Mailbox, structure_mailbox)
CONVERTER.register_structure_hook(AddressList, structure_address_list)
CONVERTER.register_structure_hook(TokenSource, structure_token_source)


def verifying_context(path: str | None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, or only those in ``path``; TLS 1.2+.

    Raises ValueError with an operator's message when ``path`` cannot be loaded.
    """
    if path is not None and (problem := regular_file_problem(path)):
        raise ValueError(f"{path!r} {problem}")
    try:
        context = ssl.create_default_context(cafile=path)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
    except ssl.SSLError:
        raise ValueError(
            f"{path!r} holds no PEM certificate; give the PEM file of the CA "
            "that signed the server's certificate"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror or exc}") from None


def _ca_file(_inst: Any, _attr: Any, value: str | None) -> None:
    if value is not None:
        verifying_context(value)


def _readable(_inst: Any, _attr: Any, value: str | None) -> None:
    if value is None:
        return
    if problem := regular_file_problem(value):
        raise ValueError(f"{value!r} {problem}")  # opening a FIFO would wait for a writer
    try:
        with open(value, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {value!r}: {exc.strerror or exc}") from None


def _no_passphrase() -> str:
    """The key's passphrase callback: never OpenSSL's prompt on the terminal."""
    raise ValueError("an encrypted key is not supported; give the key without a passphrase")


def load_client_cert(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    """Load the client certificate and its key into ``context``, or raise ValueError
    naming the field to fix (``tls_client_key: ...`` when the certificate file holds no
    key: without one the server ends the handshake, which reads like a network fault)."""
    if key is None:
        try:
            with open(cert, "rb") as handle:
                holds_key = b"PRIVATE KEY-----" in handle.read()
        except OSError as exc:
            raise ValueError(
                f"tls_client_cert: cannot read {cert!r}: {exc.strerror or exc}"
            ) from None
        if not holds_key:
            raise ValueError(
                f"tls_client_key: required: tls_client_cert {cert!r} holds no private key; "
                "set tls_client_key to the PEM file of its key"
            )
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ValueError as exc:
        raise ValueError(f"tls_client_key: {exc}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(
            f"tls_client_cert: cannot load it{' with tls_client_key' if key else ''}: "
            f"{getattr(exc, 'reason', None) or exc}"
        ) from None


def _host(_inst: Any, _attr: Any, value: str) -> None:
    if not value.strip():
        raise ValueError('must not be empty; e.g. "smtp.example.com"')
    if re.search(r"[\x00-\x20\x7f]", value):
        raise ValueError(
            "must be a host name or address without spaces, line breaks or control "
            f"characters (got {describe_value(value)})"
        )


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


def _hostname(_inst: Any, _attr: Any, value: str | None) -> None:
    if value is not None and not _HOSTNAME.fullmatch(value):
        raise ValueError(
            f"must be a host name such as mail.example.com, or an address literal such as "
            f"[192.0.2.1] (got {describe_value(value)})"
        )


HOST_SCHEMA = {
    "type": "string",
    "pattern": r"\S",
    "not": {"pattern": r"[\x00-\x20\x7f]"},
}
"""What :func:`_host` accepts: something not blank, with no space or control character
(unanchored patterns: Python's ``$`` also matches before a final line break)."""


@attrs.frozen(repr=False, cache_hash=True)
class EmailConfig:
    host: str = setting(
        validator=_host,
        description="SMTP server hostname",
        example='"smtp.example.com"',
        schema=HOST_SCHEMA,
    )
    from_: Mailbox = setting(
        key="from",
        description="sender address, optionally with a name",
        example='"DBackup <dbackup@example.com>"',
        schema=MAILBOX_SCHEMA,
    )
    to: AddressList = setting(
        description="recipient address(es): a list, or one string "
        "separated by commas or semicolons",
        example='["ops@example.com"]',
        schema=ADDRESS_LIST_SCHEMA,
    )
    cc: AddressList | None = setting(
        default=None,
        description="copy recipients (in the Cc header)",
        schema=ADDRESS_LIST_SCHEMA,
    )
    bcc: AddressList | None = setting(
        default=None,
        description="blind copy recipients (envelope only, never in a header)",
        schema=ADDRESS_LIST_SCHEMA,
    )
    reply_to: AddressList | None = setting(
        default=None, description="Reply-To address(es)", schema=ADDRESS_LIST_SCHEMA
    )
    port: int | None = setting(
        default=None,
        validator=in_range(1, 65535),
        description="SMTP port (default: 587 starttls, 465 ssl, 25 none)",
    )
    security: Security = setting(
        default=Security.STARTTLS, description="none | ssl (implicit TLS) | starttls (required)"
    )
    user: str | None = setting(default=None, description="SMTP username")
    password: Secret | None = setting(default=None, description="SMTP password (secret)")
    auth: AuthMethod = setting(
        default=AuthMethod.AUTO, description="auto | plain | login | cram-md5 | xoauth2"
    )
    oauth2_token: TokenSource | None = setting(
        default=None,
        description="XOAUTH2 access token: { env = NAME }, { file = PATH } or "
        "{ command = [...] }, read at every connection (tokens expire)",
        schema=TOKEN_SOURCE_SCHEMA,
    )
    allow_plaintext_auth: bool = setting(
        default=False, description="allow AUTH with security = none (sends the password in clear)"
    )
    tls_ca_file: str | None = setting(
        default=None, validator=_ca_file, description="PEM file of the CA(s) to trust (private CA)"
    )
    tls_client_cert: str | None = setting(
        default=None, validator=_readable, description="PEM client certificate (mutual TLS)"
    )
    tls_client_key: str | None = setting(
        default=None, validator=_readable, description="PEM key of tls_client_cert"
    )
    tls_verify: bool = setting(
        default=True,
        description="verify the server's certificate; false is an explicit, loudly "
        "reported opt-out",
    )
    timeout: float = setting(
        default=30.0, validator=positive, description="seconds to wait for each server reply"
    )
    deadline: float = setting(
        default=50.0,
        validator=positive,
        description="seconds one delivery attempt may take in all, however the server paces it",
    )
    per_recipient: bool = setting(
        default=False, description="one message per recipient: nobody sees the others"
    )
    max_connections: int = setting(
        default=4, validator=in_range(1, 100), description="connections kept to this server at once"
    )
    local_hostname: str | None = setting(
        default=None,
        validator=_hostname,
        description="name sent with EHLO (default: this machine's FQDN)",
        schema={
            "type": "string",
            "pattern": "^(?:" + _HOSTNAME.pattern + ")$",
            "not": {"pattern": "\n"},  # Python's $ also matches before a final line break
        },
    )

    def __attrs_post_init__(self) -> None:
        if self.auth is AuthMethod.XOAUTH2:
            if self.oauth2_token is None:
                raise InvalidField(
                    "oauth2_token", 'required with auth = "xoauth2", e.g. { env = "SMTP_TOKEN" }'
                )
            if self.user is None:
                raise InvalidField("user", 'required with auth = "xoauth2" (the mailbox address)')
            if self.password is not None:
                raise InvalidField("password", 'not used with auth = "xoauth2"; remove it')
        else:
            if self.oauth2_token is not None:
                raise InvalidField("oauth2_token", 'only used with auth = "xoauth2"')
            if (self.user is None) != (self.password is None):
                missing, other = (
                    ("password", "user") if self.password is None else ("user", "password")
                )
                raise InvalidField(missing, f"required when {other} is set; set both, or neither")
        if (
            self.user is not None
            and self.security is Security.NONE
            and not self.allow_plaintext_auth
        ):
            raise InvalidField(
                "security",
                '"none" would send the password in clear; use "starttls" or '
                '"ssl", or set allow_plaintext_auth = true if you accept that',
            )
        if self.tls_client_key is not None and self.tls_client_cert is None:
            # a certificate file alone may hold the key too; a key alone is a mistake
            raise InvalidField("tls_client_cert", "required when tls_client_key is set")
        if self.tls_client_cert is not None:
            try:
                load_client_cert(
                    ssl.create_default_context(), self.tls_client_cert, self.tls_client_key
                )
            except ValueError as exc:
                field, _, problem = str(exc).partition(": ")
                raise InvalidField(field, problem) from None
        if self.effective_port == 465 and self.security is not Security.SSL:
            raise InvalidField(
                "security",
                f'port 465 speaks TLS from the start: use security = "ssl" '
                f"(got {self.security.value!r})",
            )

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]

    @property
    def authenticates(self) -> bool:
        return self.user is not None

    def __repr__(self) -> str:
        shown: dict[str, Any] = {
            "host": self.host,
            "port": self.effective_port,
            "security": self.security.value,
            "user": self.user,
            "auth": self.auth.value,
            "from": str(self.from_),
            "to": [str(t) for t in self.to],
        }
        return "EmailConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def _when(**values: Any) -> dict[str, Any]:
    """JSON Schema: a block in which each of these keys is written with this value."""
    return {"properties": {k: {"const": v} for k, v in values.items()}, "required": list(values)}


SCHEMA_RULES: tuple[dict[str, Any], ...] = (
    {
        "if": _when(auth="xoauth2"),
        "then": {"required": ["oauth2_token", "user"], "not": {"required": ["password"]}},
        "else": {
            "not": {"required": ["oauth2_token"]},
            "dependentRequired": {"user": ["password"], "password": ["user"]},
        },
    },
    {
        "if": {**_when(security="none"), "required": ["security", "user"]},
        "then": _when(allow_plaintext_auth=True),
    },
    {"dependentRequired": {"tls_client_key": ["tls_client_cert"]}},
    # every preset and the default say starttls, and security = "ssl" alone means 465
    {"if": _when(port=465), "then": _when(security="ssl")},
)
""":meth:`EmailConfig.__attrs_post_init__`'s checks across keys, for ``dbnotify schema``."""
