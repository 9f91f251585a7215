"""OAuth 2 access tokens for XOAUTH2, read when a connection authenticates.

Access tokens expire (Microsoft 365 and Gmail: about an hour), so unlike a password they
are not read once with the configuration: the file, the variable or the command is asked
again at every connection. A command is run without a shell, with a time limit, and its
output is a secret: never logged, never part of an error.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dbnotify.channel import Secret, regular_file_problem

COMMAND_TIMEOUT = 30.0


class TokenError(Exception):
    """The token could not be had; the message says why without showing any token."""


@attrs.frozen
class TokenSource:
    env: str | None = None
    file: str | None = None
    command: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return f"command {self.command[0] if self.command else '?'}"

    async def read(self) -> Secret:
        if self.env is not None:
            value = os.environ.get(self.env, "").strip()
            if not value:
                raise TokenError(f"oauth2_token: environment variable {self.env} is empty or unset")
            return Secret(value, source=f"env {self.env}")
        if self.file is not None:
            try:
                value = (await asyncio.to_thread(_read_text, self.file)).strip()
            except OSError as exc:
                raise TokenError(
                    f"oauth2_token: cannot read {self.file!r}: {exc.strerror or exc}"
                ) from None
            if not value:
                raise TokenError(f"oauth2_token: {self.file!r} is empty")
            return Secret(value, source=f"file {self.file}")
        assert self.command is not None
        return await self._run()

    async def _run(self) -> Secret:
        assert self.command is not None
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise TokenError(
                f"oauth2_token: cannot run {self.command[0]!r}: {exc.strerror or exc}"
            ) from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TokenError(
                f"oauth2_token: {self.command[0]!r} did not finish within {COMMAND_TIMEOUT:g}s"
            ) from None
        del err  # a helper might print a token there: never show it anywhere
        if proc.returncode != 0:
            raise TokenError(
                f"oauth2_token: {self.command[0]!r} exited with status {proc.returncode}; "
                "run it by hand as the same user to see why"
            )
        value = out.decode(errors="replace").strip()
        if not value:
            raise TokenError(f"oauth2_token: {self.command[0]!r} printed no token")
        return Secret(value, source=f"command {self.command[0]}")


def _read_text(path: str) -> str:
    found = Path(path).expanduser()
    if problem := regular_file_problem(found):
        # reading a FIFO would wait for a writer, holding a thread at every connection
        raise OSError(f"it {problem}")
    return found.read_text()


def structure_token_source(value: Any, _cl: Any) -> TokenSource:
    """The converter's hook for :class:`TokenSource`: ``{ env }``, ``{ file }`` or
    ``{ command }``."""
    if isinstance(value, TokenSource):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, item),) = value.items()
        if key == "env" and isinstance(item, str) and item:
            return TokenSource(env=item)
        if key == "file" and isinstance(item, str) and item:
            return TokenSource(file=item)
        if (
            key == "command"
            and isinstance(item, list)
            and item
            and all(isinstance(part, str) for part in item)
        ):
            return TokenSource(command=tuple(item))
    # never the value itself: a string here is most likely the token written out
    if isinstance(value, Mapping):
        got = "a table with keys " + ", ".join(map(str, value))
    elif isinstance(value, str):
        got = "a string; write where the token is read from, not the token: it expires"
    else:
        got = {list: "a list", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(value), type(value).__name__
        )
    raise ValueError(
        'must be { env = "NAME" }, { file = "/path" } or { command = ["program", "arg"] } '
        f"(got {got})"
    )


TOKEN_SOURCE_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"env": {"type": "string", "minLength": 1}},
            "required": ["env"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"file": {"type": "string", "minLength": 1}},
            "required": ["file"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "command": {"type": "array", "items": {"type": "string"}, "minItems": 1}
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    ],
    "writeOnly": True,
    "x-secret": True,
}
"""How a :class:`TokenSource` is written, for ``dbnotify schema``: a secret."""
