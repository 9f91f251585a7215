"""The email channel's configuration block."""

from __future__ import annotations

import enum
import ssl
from typing import Any

import attrs

from dbnotify.config import (
    CONVERTER,
    InvalidField,
    describe_value,
    did_you_mean,
    in_range,
    positive,
    setting,
)
from dbnotify.secrets import Secret
from dbnotify_email.addresses import AddressList, Mailbox


class Security(enum.Enum):
    NONE = "none"
    SSL = "ssl"
    STARTTLS = "starttls"


DEFAULT_PORTS = {Security.STARTTLS: 587, Security.SSL: 465, Security.NONE: 25}

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


CONVERTER.register_structure_hook(Security, _security)


def verifying_context(path: str | None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, or only those in ``path``.

    Raises ValueError with an operator's message when ``path`` cannot be loaded.
    """
    try:
        return ssl.create_default_context(cafile=path)
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


@attrs.frozen
class EmailConfig:
    host: str = setting(description="SMTP server hostname", example='"smtp.example.com"')
    from_: Mailbox = setting(
        key="from",
        description="sender address, optionally with a name",
        example='"DBackup <dbackup@example.com>"',
    )
    to: AddressList = setting(
        description="recipient address(es): a list, or one string "
        "separated by commas or semicolons",
        example='["ops@example.com"]',
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
    allow_plaintext_auth: bool = setting(
        default=False, description="allow AUTH with security = none (sends the password in clear)"
    )
    tls_ca_file: str | None = setting(
        default=None, validator=_ca_file, description="PEM file of the CA(s) to trust (private CA)"
    )
    timeout: float = setting(
        default=30.0, validator=positive, description="seconds to wait for each server reply"
    )

    def __attrs_post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            missing, other = ("password", "user") if self.password is None else ("user", "password")
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

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]

    def __repr__(self) -> str:
        shown: dict[str, Any] = {
            "host": self.host,
            "port": self.effective_port,
            "security": self.security.value,
            "user": self.user,
            "from": str(self.from_),
            "to": [str(t) for t in self.to],
        }
        return "EmailConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
