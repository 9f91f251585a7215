"""Who is calling: a bearer token from ``[serve.tokens]``, and what its scopes allow.

Every configured token is compared in constant time (:func:`hmac.compare_digest`), all
of them every time, so that neither a token nor its name can be found by timing.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import attrs

from dbnotify.config.model import ApiToken, Scope
from dbnotify.serve.problems import ApiError, Problem


@attrs.frozen
class Caller:
    """A request's token: its name (for logs and history) and its scopes."""

    name: str
    token: ApiToken = attrs.field(repr=False)

    def require(self, needed: Scope, what: str) -> None:
        """403 unless this token may do ``needed``."""
        if not self.token.allows(needed):
            have = ", ".join(s.value for s in self.token.scopes)
            raise ApiError(
                403,
                f"token {self.name!r} may not {what}",
                [
                    Problem(
                        "scopes",
                        f"this needs the {needed.value!r} scope (or 'admin'); give it in "
                        f"[serve.tokens.{self.name}] scopes, or use another token",
                        have,
                    )
                ],
            )


def find_token(tokens: Mapping[str, ApiToken], given: str) -> Caller | None:
    """The caller whose token is ``given``, comparing with every token."""
    found: Caller | None = None
    candidate = given.encode()
    for name, token in tokens.items():
        if hmac.compare_digest(candidate, token.secret.reveal().encode()) and found is None:
            found = Caller(name, token)
    return found


UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer realm="dbnotify"'}


def bearer(tokens: Mapping[str, ApiToken], authorization: str | None) -> Caller:
    """The caller named by an ``Authorization: Bearer ...`` header; 401 otherwise."""
    if not authorization:
        raise ApiError(
            401,
            "authentication required",
            [Problem("Authorization", "send the header Authorization: Bearer <token>")],
            headers=UNAUTHENTICATED,
        )
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401,
            "authentication required",
            [Problem("Authorization", "use the Bearer scheme: Authorization: Bearer <token>")],
            headers=UNAUTHENTICATED,
        )
    caller = find_token(tokens, given.strip())
    if caller is None:
        raise ApiError(
            401,
            "unknown token",
            [Problem("Authorization", "use a token from [serve.tokens] of the configuration")],
            headers=UNAUTHENTICATED,
        )
    return caller
