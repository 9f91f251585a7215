"""Bounds on what an operator's template may cost: its time, and the size of one value.

Templates from ``rendering.templates_dir`` and payload templates in the configuration
are the operator's code, run on the event loop: a nested loop took 19 s against a 1 s
delivery deadline, and a slow payload template blocked ``validate``. Jinja2's sandbox
bounds ``range()`` but not loops in loops, nor ``"x" * 10**9``. So an operator's
template renders under a time limit (a trace function, in this thread only, while it
renders), and the sandbox refuses repetitions and powers that would make huge values.
dbnotify's own templates, when nobody overrides them, run without the tracer.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

TIME_LIMIT = 2.0
"""Seconds an operator's template may take to render once."""
MAX_REPEAT = 1_000_000
"""Characters (or items) one ``*`` in a template may make."""
MAX_EXPONENT = 64
"""The largest exponent of ``**`` in a template."""


class TemplateTooSlow(jinja2.TemplateError):
    """An operator's template ran past :data:`TIME_LIMIT`."""


@contextmanager
def time_limit(seconds: float = TIME_LIMIT) -> Iterator[None]:
    """Raise :class:`TemplateTooSlow` in the template's code once ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    previous = sys.gettrace()

    def line(_frame: FrameType, _event: str, _arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise TemplateTooSlow(
                f"took longer than {seconds:g}s to render (a loop too large?); simplify it"
            )
        return line

    def call(_frame: FrameType, _event: str, _arg: Any) -> Any:
        return line

    sys.settrace(call)
    try:
        yield
    finally:
        sys.settrace(previous)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, refusing a ``*`` or ``**`` whose result would be huge."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed in a template")
        if operator == "*":
            for sized, count in ((left, right), (right, left)):
                if (
                    isinstance(sized, str | list | tuple)
                    and isinstance(count, int)
                    and len(sized) * count > MAX_REPEAT
                ):
                    raise SecurityError(
                        f"a repetition of more than {MAX_REPEAT} characters or items is not "
                        "allowed in a template"
                    )
        return super().call_binop(context, operator, left, right)
