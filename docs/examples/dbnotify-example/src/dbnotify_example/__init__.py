"""logfile: a dbnotify channel that appends each notification to a file.

The example plugin of the plugin authors' tutorial (docs/plugin-tutorial.md).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dbnotify.channel import (
    ChannelInfo,
    FailureKind,
    Notification,
    RecipientResult,
    Renderer,
    Secret,
    Status,
    TestReport,
    TestStage,
    hookimpl,
    non_empty,
    setting,
    structure,
)


@attrs.frozen(repr=False)
class LogfileConfig:
    path: str = setting(
        validator=non_empty,
        description="the file to append to (created when missing; its folder must exist)",
        example='"/var/log/dbackup/notifications.log"',
    )
    signing_key: Secret | None = setting(
        default=None,
        description="HMAC-SHA256 key: each entry ends with its signature (secret)",
    )

    def __repr__(self) -> str:  # never the key
        return f"LogfileConfig(path={self.path!r}, signed={self.signing_key is not None})"


@hookimpl
def channel_info() -> ChannelInfo:
    return ChannelInfo(description="Log file: append each notification", config_class=LogfileConfig)


@hookimpl
def validate_config(options: Mapping[str, Any]) -> LogfileConfig:
    return structure(LogfileConfig, options)


MARK = "=== "
"""Every entry starts with this line prefix, then the subject."""


def entry(config: LogfileConfig, notification: Notification, renderer: Renderer) -> str:
    """One entry: the subject line, the text, and the signature when a key is set."""
    body = f"{MARK}{renderer.subject(notification)}\n{renderer.text(notification)}"
    if config.signing_key is None:
        return body
    key = config.signing_key.reveal().encode()
    signature = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}hmac-sha256={signature}\n"


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


# Worth trying again later: the folder may be on a mount that is not up yet, the disk
# may get space. Everything else (a folder as path, no permission) needs a person.
TRANSIENT = {errno.ENOENT, errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EBUSY, errno.EINTR}


def _failed(config: LogfileConfig, exc: OSError) -> RecipientResult:
    """Never raise for a delivery failure: say what happened and whether to retry."""
    what = exc.strerror or type(exc).__name__
    if exc.errno in TRANSIENT:
        return RecipientResult.failed(
            config.path,
            FailureKind.TRANSIENT,
            f"cannot append to {config.path}: {what}",
            hint="check that the folder exists (and its mount is up) and the disk has space",
        )
    return RecipientResult.failed(
        config.path,
        FailureKind.PERMANENT,
        f"cannot append to {config.path}: {what}",
        hint="path must name a file this process may write; fix it or its permissions",
    )


@hookimpl
async def send(
    config: LogfileConfig, notification: Notification, renderer: Renderer
) -> Sequence[RecipientResult]:
    text = entry(config, notification, renderer)
    try:
        await asyncio.to_thread(_append, config.path, text)  # file I/O off the event loop
    except OSError as exc:
        return [_failed(config, exc)]
    return [RecipientResult.delivered(config.path, reply=f"{len(text.encode())} bytes appended")]


def _check(path: str) -> list[TestStage]:
    """What can be checked without writing (blocking calls: run it in a thread)."""
    started = time.monotonic()
    target = Path(path)
    if not target.parent.is_dir():
        return [
            TestStage(
                "folder",
                False,
                f"{target.parent} does not exist",
                time.monotonic() - started,
                hint="create it, or mount what it lives on",
            )
        ]
    stages = [TestStage("folder", True, f"{target.parent} exists", time.monotonic() - started)]
    started = time.monotonic()
    if target.is_dir():
        ok, detail = False, f"{target} is a folder, not a file"
    elif os.access(target if target.exists() else target.parent, os.W_OK):
        ok, detail = True, "writable"
    else:
        ok, detail = False, "not writable by this process"
    hint = None if ok else "path must name a file this process may write"
    stages.append(TestStage("access", ok, detail, time.monotonic() - started, hint))
    return stages


@hookimpl
async def test(
    config: LogfileConfig, notification: Notification, renderer: Renderer, send_message: bool
) -> TestReport:
    stages = await asyncio.to_thread(_check, config.path)
    if not send_message or not all(s.ok for s in stages):
        return TestReport(tuple(stages))
    started = time.monotonic()
    (result,) = await send(config, notification, renderer)
    ok = result.status is Status.DELIVERED
    detail = result.reply or result.reason or ""
    stages.append(TestStage("write", ok, detail, time.monotonic() - started, result.hint))
    return TestReport(tuple(stages), (result,))
