"""Every secret of an email channel masked in what comes back from the server.

A server may quote what it was sent: a ``535`` that echoes the AUTH PLAIN or LOGIN
base64, the decoded password, or the XOAUTH2 blob. Server text reaches results (``send``,
history, the outbox file) and test stages, so both hooks pass what they return through
:func:`masker` once, whoever wrote the text.
"""

from __future__ import annotations

import base64
import weakref
from collections.abc import Iterable, Sequence
from urllib.parse import quote, quote_plus

import attrs
from aiosmtplib.auth import auth_login_encode, auth_plain_encode, auth_xoauth2_encode

from dbnotify.channel import MASK, RecipientResult, Secret, TestReport, TestStage
from dbnotify_email.settings import EmailConfig

_TOKENS: weakref.WeakKeyDictionary[EmailConfig, tuple[str, ...]] = weakref.WeakKeyDictionary()
_TOKENS_KEPT = 4
"""XOAUTH2 tokens remembered per configuration: the ones of connections still open."""


def remember_token(config: EmailConfig, token: Secret) -> None:
    """An XOAUTH2 token read for ``config`` (read at each connection, so not in it)."""
    kept = _TOKENS.get(config, ())
    value = token.reveal()
    if value not in kept:
        _TOKENS[config] = (*kept, value)[-_TOKENS_KEPT:]


MIN_LENGTH = 4
"""Shorter forms are not masked: a 3-character password would mask every word holding it."""


def _b64(data: bytes) -> set[str]:
    std = base64.b64encode(data).decode("ascii")
    url = base64.urlsafe_b64encode(data).decode("ascii")
    return {std, std.rstrip("="), url, url.rstrip("=")}


def forms(user: str | None, secret: str) -> set[str]:
    """``secret`` as a server may echo it: as it is, URL-encoded, base64, and inside the
    AUTH PLAIN, LOGIN and XOAUTH2 exchanges of ``user``."""
    if not secret:
        return set()
    found = {secret, quote(secret, safe=""), quote_plus(secret), *_b64(secret.encode())}
    name = user or ""
    found |= _b64(base64.b64decode(auth_plain_encode(name, secret)))
    found |= _b64(base64.b64decode(auth_login_encode(name, secret)[1]))
    found |= _b64(base64.b64decode(auth_xoauth2_encode(name, secret)))
    return {f for f in found if len(f) >= MIN_LENGTH}


@attrs.frozen
class Masker:
    """Replaces each of ``secrets`` (longest first) by the mask."""

    secrets: tuple[str, ...]

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self.text(text)

    def result(self, result: RecipientResult) -> RecipientResult:
        return attrs.evolve(
            result,
            reason=self.optional(result.reason),
            reply=self.optional(result.reply),
            hint=self.optional(result.hint),
        )

    def results(self, results: Iterable[RecipientResult]) -> list[RecipientResult]:
        return [self.result(r) for r in results]

    def stage(self, stage: TestStage) -> TestStage:
        return attrs.evolve(stage, detail=self.text(stage.detail), hint=self.optional(stage.hint))

    def report(self, report: TestReport) -> TestReport:
        return TestReport(
            tuple(self.stage(s) for s in report.stages), tuple(self.results(report.deliveries))
        )


def masker(config: EmailConfig, extra: Sequence[str] = ()) -> Masker:
    """The masker of ``config``: its password and the XOAUTH2 tokens read for it."""
    secrets = [*extra, *_TOKENS.get(config, ())]
    if config.password is not None:
        secrets.append(config.password.reveal())
    found: set[str] = set()
    for secret in secrets:
        found |= forms(config.user, secret)
    return Masker(tuple(sorted(found, key=len, reverse=True)))
