"""Keep the credentials inside Apprise URLs out of every message and log line.

An Apprise URL carries its credentials in any part: ``discord://ID/TOKEN``,
``tgram://BOT_TOKEN/CHAT``, ``mailto://user:PASSWORD@host``, ``ntfy://user:pass@host/topic``.
Apprise masks passwords in its own log lines, but at DEBUG it logs the URLs it posts to
(tokens in the path), and so does urllib3. This module derives the secret parts of each
configured URL and masks them:

- in the text this plugin puts into results (:func:`redact`);
- in the records of the ``apprise`` and ``urllib3.connectionpool`` loggers, through a
  filter installed on those two loggers (:func:`protect`), whoever logs there.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote

from dbnotify.channel import Masker, credential_key, secret_forms

LOGGERS = ("apprise", "urllib3.connectionpool")
MIN_LENGTH = 6
"""A part that may be a credential or a word (a path segment, a query value, a token as
"host") is masked from this length: ``json``, ``POST`` and a port number are words. A
password, and a query value under a key such as ``token`` or ``apikey``, is a secret
however short: masked by the shared rule (:class:`dbnotify.channel.Masker`: a short one
where it stands alone)."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_lock = threading.Lock()
_fragments: set[str] = set()
_masker = Masker()


def scheme_of(url: str) -> str | None:
    """``discord`` of ``discord://...``; None when the text has no ``scheme://``."""
    match = _SCHEME.match(url)
    return match[1].lower() if match else None


def _printed(candidate: str) -> set[str]:
    """Apprise's own "privacy" print of a secret: first and last character, or the last
    four; in its error messages too."""
    return {f"{candidate[0]}...{candidate[-1]}", f"...{candidate[-4:]}"}


def secret_parts(url: str) -> set[str]:
    """The URL itself and each part of it that may be a credential.

    The password and the values of credential keys (``?token=``), however short; the
    user name, the host unless it is a DNS name or an address (a token as "host":
    ``tgram://123:ABC/``), every path segment and every other query value from
    :data:`MIN_LENGTH` characters; each also percent-decoded.
    """
    parts = {url}
    _scheme, sep, rest = url.partition("://")
    if not sep:
        return parts
    rest, _hash, fragment = rest.partition("#")
    rest, _q, query = rest.partition("?")
    netloc, _slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    found: list[str] = []
    certain: list[str] = []
    if at:
        found += [userinfo, *userinfo.split(":")]
        _user, colon, password = userinfo.partition(":")
        if colon:
            certain.append(password)
    if host and "." not in host and host.lower() != "localhost" and not host.startswith("["):
        found += [host, *host.split(":")]
    found += path.split("/")
    for pair in re.split(r"[&;]", query):
        key, _eq, value = pair.partition("=")
        (certain if credential_key(unquote(key)) else found).extend([value, *value.split(",")])
    found.append(fragment)
    for part in found:
        for candidate in (part, unquote(part)):
            if len(candidate) >= MIN_LENGTH:
                parts |= {candidate, *_printed(candidate)}
    for part in certain:
        for candidate in (part, unquote(part)):
            if candidate:
                parts |= {*secret_forms(candidate), *_printed(candidate)}
    if at and ":" in userinfo:
        # the Authorization: Basic value the service gets (and may echo)
        blob = base64.b64encode(unquote(userinfo).encode()).decode("ascii")
        parts |= {blob, blob.rstrip("=")}
    return parts


def remember(urls: Iterable[str]) -> None:
    """Mask these URLs' secret parts from now on, in this process."""
    global _masker
    with _lock:
        for url in urls:
            _fragments.update(secret_parts(url))
        _masker = Masker(_fragments)


def redact(text: str, urls: Iterable[str] = ()) -> str:
    """``text`` with every remembered secret part (and those of ``urls``) masked."""
    extra = {p for u in urls for p in secret_parts(u)}
    if not extra:
        return _masker(text)
    with _lock:
        extra |= _fragments
    return Masker(extra)(text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with the secret parts masked; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _masker:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the logger's to report
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = RedactingFilter()


def protect() -> None:
    """Install the filter on Apprise's and urllib3's loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
