"""Bounds on what an operator's template may cost: its time, and the size of its values.

Templates from ``rendering.templates_dir`` and payload templates in the configuration
are the operator's code, run on the event loop: a nested loop took 19 s against a 1 s
delivery deadline, and a slow payload template blocked ``validate``. Jinja2's sandbox
bounds ``range()`` but not loops in loops, nor ``"x" * 10**9``. So an operator's
template renders under a time limit (a trace function, in this thread only, while it
renders), and its output may grow past what it was given by :data:`MAX_SIZE` at most.

The trace function runs between lines of Python: it cannot stop one call into C, such
as ``"x"|center(10**9)``, which allocates gigabytes before it returns. So the sandbox
checks, before each such call, the size of what it would make: a call that would make a
value :data:`MAX_SIZE` larger than its input (a string's characters, a list's items, a
number's bits) is refused. These checks are cheap, and run for dbnotify's own templates
too; those, when nobody overrides them, run without the tracer and the output bound.
"""

from __future__ import annotations

import contextvars
import json
import re
import string
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import update_wrapper
from types import FrameType
from typing import Any

import jinja2
import markupsafe
from jinja2 import filters
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)

TIME_LIMIT = 2.0
"""Seconds an operator's template may take to render once."""
MAX_SIZE = 1_000_000
"""How much one step of a template may add to what it was given: characters of a
string, items of a list, bits of a number. Also how much longer than its input values
an operator's template's output may be."""
MAX_REPEAT = MAX_SIZE
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


_GIVEN: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "dbnotify_template_given", default=None
)
"""Characters of the values a watched template was given; None: not watched."""


@contextmanager
def output_limit(given: int) -> Iterator[None]:
    """While it lasts, a template's output (and each block's) may hold ``given`` plus
    :data:`MAX_SIZE` characters: a loop that prints a large value many times is stopped
    when it passes that, not when the time is up and the memory is gone."""
    token = _GIVEN.set(given)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def size_of(value: Any, depth: int = 3) -> int:
    """Characters of the text in ``value``: a string, or the strings in its lists,
    tuples and dicts (``fields``), ``depth`` levels down."""
    if isinstance(value, str | bytes):
        return len(value)
    if depth and isinstance(value, Mapping):
        return sum(size_of(k, depth - 1) + size_of(v, depth - 1) for k, v in value.items())
    if depth and isinstance(value, list | tuple):
        return sum(size_of(v, depth - 1) for v in value)
    return 0


def _check(what: str, added: int, unit: str = "characters") -> None:
    """Refuse a step that would add more than MAX_SIZE ``unit`` to its input."""
    if added > MAX_SIZE:
        raise SecurityError(
            f"{what} would add {added} {unit} to a value; more than {MAX_SIZE} at once is "
            "not allowed in a template"
        )


def _number(digits: str) -> int:
    """A width written in a format: ``999999999`` (past 9 digits: over any limit)."""
    return int(digits) if len(digits) <= 9 else 10**9


_PRINTF = re.compile(r"%(\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)


def printf_added(template: str | bytes, args: Any) -> int:
    """Characters a ``%`` format may add at most: its widths and precisions, ``*`` ones
    read from ``args`` as Python would."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    if "%" not in text:
        return 0
    positional = list(args) if isinstance(args, tuple) else [args]
    added = 0
    for found in _PRINTF.finditer(text):
        for part in (found[2], found[3]):
            if part == "*":
                value = positional.pop(0) if positional else 0
                added += value if isinstance(value, int) and value > 0 else 0
            elif part:
                added += _number(part)
        if found[4] != "%" and found[1] is None and positional:
            positional.pop(0)
    return added


def _spec_added(spec: str) -> int:
    """Characters a ``str.format`` spec (``>999999999``, ``.9f``) may add at most."""
    return sum(_number(d) for d in re.findall(r"\d+", spec)) if spec else 0


class _BoundedFields:
    """A formatter whose fields together add at most :data:`MAX_SIZE` characters."""

    added = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.added += _spec_added(format_spec)
        _check("str.format", self.added)
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _BoundedFormatter(_BoundedFields, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFields, SandboxedEscapeFormatter):
    pass


# --- str and bytes methods that make a value of a size given as an argument ------------


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _longest(table: Any) -> int:
    """The longest replacement in a ``str.translate`` table."""
    values: Iterable[Any] = table.values() if isinstance(table, Mapping) else table
    return max((len(v) for v in values if isinstance(v, str | bytes)), default=1)


def _added_by(name: str, text: str | bytes, args: tuple[Any, ...], kw: Mapping[str, Any]) -> int:
    """What ``text.name(*args, **kw)`` would add at most to ``text``; 0 for arguments
    Python will refuse itself."""
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _arg(args, kw, 0, "width")
        return width - len(text) if isinstance(width, int) else 0
    kind = bytes if isinstance(text, bytes) else str  # Markup's methods take a str
    if name == "expandtabs":
        size = _arg(args, kw, 0, "tabsize")
        size = 8 if size is None else size
        tab: str | bytes = b"\t" if kind is bytes else "\t"
        return text.count(tab) * size if isinstance(size, int) else 0  # type: ignore[arg-type]
    if name == "replace":
        old, new = _arg(args, kw, 0, "old"), _arg(args, kw, 1, "new")
        if not isinstance(old, kind) or not isinstance(new, kind):
            return 0
        count = _arg(args, kw, 2, "count")
        times = text.count(old)  # type: ignore[arg-type]
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        return times * (len(new) - len(old))
    if name == "translate":
        table = _arg(args, kw, 0, "table")
        if isinstance(table, Mapping | Sequence):
            return len(text) * (_longest(table) - 1)
    return 0


_GROWING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "translate"})


def _bounded_method(method: Any) -> Callable[..., Any]:
    """``method`` of a string, refusing a call that would add more than MAX_SIZE."""
    text, name = method.__self__, method.__name__

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name == "join":
            items = list(args[0]) if len(args) == 1 and not kwargs else None
            if items is not None:
                _check(f"{type(text).__name__}.join", (len(items) - 1) * len(text))
                return method(items)
        else:
            _check(f"{type(text).__name__}.{name}", _added_by(name, text, args, kwargs))
        return method(*args, **kwargs)

    # not functools.update_wrapper: this runs for every such call a template makes (the
    # text template pads each label), and the name is all a sandbox or an error reads
    bounded.__name__ = bounded.__qualname__ = name
    return bounded


# --- filters that make a value of a size given as an argument -------------------------


def _center(value: str, width: int = 80) -> str:
    _check("center", width - len(str(value)) if isinstance(width, int) else 0)
    return filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    unit = width if isinstance(width, int) else len(str(width))
    _check("indent", (str(s).count("\n") + 2) * unit)
    return filters.do_indent(s, width, first, blank)


@jinja2.pass_environment
def _wordwrap(
    environment: jinja2.Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    """Jinja2's ``wordwrap``, its line breaks counted before they are joined."""
    if wrapstring is None:
        wrapstring = environment.newline_sequence
    paragraphs = [
        textwrap.wrap(
            line,
            width=width,
            expand_tabs=False,
            replace_whitespace=False,
            break_long_words=break_long_words,
            break_on_hyphens=break_on_hyphens,
        )
        for line in str(s).splitlines()
    ]
    breaks = sum(max(len(lines) - 1, 0) for lines in paragraphs) + len(paragraphs) - 1
    _check("wordwrap", breaks * len(wrapstring))
    return wrapstring.join(wrapstring.join(lines) for lines in paragraphs)


@jinja2.pass_eval_context
def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    _check("replace", _added_by("replace", text, (str(old), str(new), count), {}))
    return filters.do_replace(eval_ctx, s, old, new, count)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check("format", printf_added(str(value), kwargs or args))
    return filters.do_format(value, *args, **kwargs)


@jinja2.pass_eval_context
def _join(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    items = list(value)
    _check("join", (len(items) - 1) * len(str(d)))
    return filters.sync_do_join(eval_ctx, items, d, attribute)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if fill_with is not None and isinstance(linecount, int):
        _check("batch", linecount, "items")
    return filters.do_batch(value, linecount, fill_with)


@jinja2.pass_eval_context
def _tojson(eval_ctx: EvalContext, value: Any, indent: Any = None) -> Any:
    if indent is not None:
        unit = indent if isinstance(indent, int) else len(str(indent))
        if unit > 1:
            policies = eval_ctx.environment.policies
            once = json.dumps(value, **{**policies["json.dumps_kwargs"], "indent": 1})
            # with an indent of 1, each level is one space: ``unit`` times as many then
            levels = sum(len(line) - len(line.lstrip(" ")) for line in once.splitlines())
            _check("tojson", levels * (unit - 1))
    return filters.do_tojson(eval_ctx, value, indent)


def _escaped(name: str, escape: Callable[[Any], markupsafe.Markup]) -> Callable[..., Any]:
    """``escape`` refusing to make ``&amp;`` of a million ``&`` (chained, each call makes
    five times as much)."""

    def bounded(value: Any) -> markupsafe.Markup:
        if not hasattr(value, "__html__") or name == "forceescape":
            text = str(value)
            _check(name, 4 * sum(text.count(c) for c in "&<>'\""))
        return escape(value)

    return update_wrapper(bounded, escape)


def _urlencode(value: Any) -> str:
    found = filters.do_urlencode(value)
    _check("urlencode", len(found) - size_of(value if isinstance(value, str) else str(value)))
    return found


def _round(value: float, precision: int = 0, method: str = "common") -> float:
    if method != "common" and isinstance(precision, int) and abs(precision) > MAX_EXPONENT:
        raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed in a template")
    return filters.do_round(value, precision, method)  # type: ignore[arg-type]


_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "format": _format,
    "join": _join,
    "batch": _batch,
    "tojson": _tojson,
    "e": _escaped("escape", markupsafe.escape),
    "escape": _escaped("escape", markupsafe.escape),
    "forceescape": _escaped("forceescape", filters.do_forceescape),
    "urlencode": _urlencode,
    "round": _round,
}


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, refusing a step that would make a huge value (see the module)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(_FILTERS)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed in a template")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            _check("**", left.bit_length() * right - left.bit_length(), "bits")
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                _check("*", min(left.bit_length(), right.bit_length()), "bits")
            for sized, count in ((left, right), (right, left)):
                if (
                    isinstance(sized, str | bytes | list | tuple)
                    and isinstance(count, int)
                    and len(sized) * count > MAX_REPEAT
                ):
                    raise SecurityError(
                        f"a repetition of more than {MAX_REPEAT} characters or items is not "
                        "allowed in a template"
                    )
        if operator == "%" and isinstance(left, str | bytes):
            _check("%", printf_added(left, right))
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., Any] | None:
        """Jinja2's hook on every attribute a template reads: a string's ``format`` and
        ``format_map`` format in the sandbox, with their widths counted; ``center``,
        ``ljust`` and the other methods that make a value of a size they are given are
        checked before they run."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType):
            return None
        text = getattr(value, "__self__", None)
        if not isinstance(text, str | bytes):
            return None
        name = value.__name__
        if name in _GROWING or name == "join":
            return _bounded_method(value)
        if name not in ("format", "format_map") or not isinstance(text, str):
            return None
        is_map = name == "format_map"
        made = type(text)

        def formatted(*args: Any, **kwargs: Any) -> str:
            formatter: string.Formatter
            if isinstance(text, markupsafe.Markup):
                formatter = _BoundedEscapeFormatter(self, escape=text.escape)
            else:
                formatter = _BoundedFormatter(self)
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument, no keywords")
                return made(formatter.vformat(text, (), args[0]))
            return made(formatter.vformat(text, args, kwargs))

        return update_wrapper(formatted, value)

    def concat(self, parts: Iterable[str]) -> str:
        """The output of a template or a block, bounded while :func:`output_limit` is on."""
        given = _GIVEN.get()
        if given is None:
            return "".join(parts)
        limit = given + MAX_SIZE
        kept: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > limit:
                raise SecurityError(
                    f"the template's output passed {limit} characters (the {given} of the "
                    f"values it was given and {MAX_SIZE} more), which is not allowed"
                )
            kept.append(part)
        return "".join(kept)
