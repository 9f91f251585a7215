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

import attrs
from aiosmtplib.auth import auth_login_encode, auth_plain_encode, auth_xoauth2_encode

from dbnotify.channel import (
    Masker,
    RecipientResult,
    Secret,
    TestReport,
    TestStage,
    base64_forms,
    secret_forms,
)
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


def forms(user: str | None, secret: str) -> set[str]:
    """``secret`` as a server may echo it: its own forms (as it is, URL-encoded, base64:
    :func:`dbnotify.channel.secret_forms`), and inside the AUTH PLAIN, LOGIN and XOAUTH2
    exchanges of ``user``. Short ones are masked only where they stand alone (the
    shared :class:`~dbnotify.channel.Masker`'s rule)."""
    if not secret:
        return set()
    name = user or ""
    return (
        secret_forms(secret)
        | base64_forms(base64.b64decode(auth_plain_encode(name, secret)))
        | base64_forms(base64.b64decode(auth_login_encode(name, secret)[1]))
        | base64_forms(base64.b64decode(auth_xoauth2_encode(name, secret)))
    )


@attrs.frozen
class ChannelMasker:
    """The shared :class:`~dbnotify.channel.Masker` over results and test stages."""

    mask: Masker

    def text(self, text: str) -> str:
        return self.mask(text)

    def optional(self, text: str | None) -> str | None:
        return self.mask.optional(text)

    def result(self, result: RecipientResult) -> RecipientResult:
        reason, reply, hint = (self.optional(t) for t in (result.reason, result.reply, result.hint))
        if (reason, reply, hint) == (result.reason, result.reply, result.hint):
            return result  # nothing to hide: a result is frozen, no copy needed
        return attrs.evolve(result, reason=reason, reply=reply, hint=hint)

    def results(self, results: Iterable[RecipientResult]) -> list[RecipientResult]:
        return [self.result(r) for r in results]

    def stage(self, stage: TestStage) -> TestStage:
        return attrs.evolve(stage, detail=self.text(stage.detail), hint=self.optional(stage.hint))

    def report(self, report: TestReport) -> TestReport:
        return TestReport(
            tuple(self.stage(s) for s in report.stages), tuple(self.results(report.deliveries))
        )


def masker(config: EmailConfig, extra: Sequence[str] = ()) -> ChannelMasker:
    """The masker of ``config``: its password and the XOAUTH2 tokens read for it."""
    secrets = [*extra, *_TOKENS.get(config, ())]
    if config.password is not None:
        secrets.append(config.password.reveal())
    found: set[str] = set()
    for secret in secrets:
        found |= forms(config.user, secret)
    return ChannelMasker(Masker(found))
