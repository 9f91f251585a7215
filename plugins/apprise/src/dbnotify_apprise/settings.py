"""The apprise channel's configuration block."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import apprise
import attrs

from dbnotify.channel import ConfigError, ConfigIssue, Secret, non_empty, setting
from dbnotify_apprise import redact

SERVICES = "https://github.com/caronc/apprise/wiki"


@contextlib.contextmanager
def apprise_log(level: int = logging.WARNING) -> Iterator[list[str]]:
    """What Apprise logs in this thread meanwhile, each line with secret parts masked."""
    lines: list[str] = []
    thread = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                lines.append(redact.redact(record.getMessage()))

    handler = Collect(level)
    logger = logging.getLogger(redact.LOGGERS[0])
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def load(url: str) -> tuple[Any | None, str]:
    """Apprise's service object for ``url``, or None and why not (secrets masked)."""
    with apprise_log() as said:
        service = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if service is not None:
        return service, ""
    scheme = redact.scheme_of(url)
    if scheme is None:
        return None, (
            "must be an Apprise URL such as ntfy://ntfy.sh/dbackup or "
            "discord://WEBHOOK_ID/WEBHOOK_TOKEN (no scheme:// found)"
        )
    if scheme not in apprise.NotificationManager():  # type: ignore[no-untyped-call]
        return None, (
            f"Apprise knows no service with the scheme '{scheme}://'; the services and their "
            f"URLs are listed at {SERVICES}"
        )
    why = "; ".join(dict.fromkeys(line.strip() for line in said if line.strip()))
    return None, (
        f"Apprise cannot use this {scheme}:// URL"
        + (f": {redact.redact(why, [url])}" if why else "")
        + f"; see {SERVICES} for its form"
    )


def _loadable(_inst: Any, _attr: Any, urls: tuple[Secret, ...]) -> None:
    """Each URL must be one Apprise can load: report every one that is not, by index."""
    redact.protect()
    redact.remember(u.reveal() for u in urls)
    issues = []
    for index, url in enumerate(urls):
        service, why = load(url.reveal())
        if service is None:
            issues.append(ConfigIssue(f"[{index}]", why))
    if issues:
        raise ConfigError(issues)


@attrs.frozen(repr=False)
class AppriseConfig:
    urls: tuple[Secret, ...] = setting(
        validator=attrs.validators.and_(non_empty, _loadable),
        description="Apprise URLs, one per service (secrets: they carry the credentials); "
        'a literal, { env = "NAME" } or { file = "/path" } each',
        example='[{ env = "DISCORD_APPRISE_URL" }, "ntfy://ntfy.sh/dbackup-alerts"]',
    )

    @property
    def labels(self) -> tuple[str, ...]:
        """``apprise://SCHEME`` per URL (``#2`` and on for a scheme used again)."""
        seen: dict[str, int] = {}
        labels = []
        for url in self.urls:
            scheme = redact.scheme_of(url.reveal()) or "unknown"
            seen[scheme] = seen.get(scheme, 0) + 1
            count = seen[scheme]
            labels.append(f"apprise://{scheme}" + (f"#{count}" if count > 1 else ""))
        return tuple(labels)

    def __repr__(self) -> str:
        return f"AppriseConfig(urls={list(self.labels)!r})"
