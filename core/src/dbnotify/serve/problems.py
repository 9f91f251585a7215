"""Every error the API returns: RFC 9457 problem details, with each problem's field,
the value (never a secret's) and the fix. Never a traceback."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import attrs

from dbnotify.config.fields import describe_value
from dbnotify.secrets import credential_key

PROBLEM_JSON = "application/problem+json"


@attrs.frozen
class Problem:
    """One thing wrong with a request: where, what was given, and what to do."""

    field: str | None
    """Where, as a dotted path into the body (``data.job_name``) or a parameter's name."""
    fix: str
    """What is wrong and how to put it right."""
    value: Any = None
    """What was given, as text; ``None`` when absent or when it may be a secret."""

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "fix": self.fix}


def shown_value(field: str | None, value: Any) -> str | None:
    """How a given value is echoed: shortened, and never when the field names a
    credential (``password``, ``token``, ``secret`` ...)."""
    if value is None:
        return None
    last = (field or "").rsplit(".", 1)[-1]
    if credential_key(last):
        return None
    return describe_value(value)


class ApiError(Exception):
    """Raised by a handler; the application turns it into the problem response."""

    def __init__(
        self,
        status: int,
        detail: str,
        problems: Iterable[Problem] = (),
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = tuple(problems)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return problem_body(self.status, self.detail, self.problems)


def problem_body(status: int, detail: str, problems: Iterable[Problem] = ()) -> dict[str, Any]:
    """The JSON of a problem response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    found = [p.as_dict() for p in problems]
    if found:
        body["errors"] = found
    return body


def not_found(what: str, fix: str) -> ApiError:
    return ApiError(404, f"{what} not found", [Problem(None, fix)])
