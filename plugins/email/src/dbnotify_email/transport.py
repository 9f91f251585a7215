"""Connecting to the SMTP server the way the configuration says, and no weaker.

``starttls`` means TLS is required: aiosmtplib's default (``start_tls=None``) would
upgrade only when the server offers STARTTLS, handing AUTH to whoever hides it.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from dbnotify_email.settings import EmailConfig, Security, verifying_context


def tls_context(config: EmailConfig) -> ssl.SSLContext:
    """Verifying context; ValueError when tls_ca_file can no longer be loaded."""
    context = verifying_context(config.tls_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client(config: EmailConfig) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=config.host,
        port=config.effective_port,
        use_tls=config.security is Security.SSL,
        start_tls=config.security is Security.STARTTLS,
        tls_context=tls_context(config) if config.security is not Security.NONE else None,
        timeout=config.timeout,
    )


async def login(smtp: aiosmtplib.SMTP, config: EmailConfig) -> bool:
    """Authenticate when configured. Returns whether AUTH was done."""
    if config.user is None or config.password is None:
        return False
    await smtp.login(config.user, config.password.reveal())
    return True
