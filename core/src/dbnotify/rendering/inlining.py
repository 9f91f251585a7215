"""CSS inlined into dbnotify's own HTML template once, not into every message.

Mail clients ignore ``<style>`` (Gmail's app, Outlook), so every rule is written onto
the elements it matches. Done on each rendered message, that was a tenth of the whole
pipeline's CPU (docs/performance.md, issue 16). The template's rules depend only on the
template, not on the values, so they are inlined into its source once: each Jinja2
construct is swapped for a placeholder the HTML parser keeps in place (a comment for a
statement, a plain word for an expression), the result is inlined, and the constructs
are put back. Where that cannot be shown to keep every construct, in order, the caller
inlines each rendering as before.
"""

from __future__ import annotations

import itertools
import re
import secrets

import css_inline

_CONSTRUCT = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_RAW_TEXT = re.compile(r"<(title|style|script|textarea)\b[^>]*>\s*$", re.IGNORECASE)


def inliner() -> css_inline.CSSInliner:
    """The one way dbnotify inlines: no ``<style>`` left, nothing fetched."""
    return css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def preinline(source: str, css: css_inline.CSSInliner) -> str | None:
    """``source`` (a Jinja2 HTML template) with its CSS inlined; ``None`` where the
    HTML parser dropped, doubled or reordered a construct (the values of one tag's
    attributes may change places). Only for a template whose renderings the tests check
    against inlining each one (dbnotify's own): a loop around table rows, say, needs its
    ``<tbody>`` written out, or the parser puts one inside the loop."""
    tag = "jinja" + secrets.token_hex(4)
    constructs: list[str] = []
    owners: list[int | None] = []
    """For each construct inside a tag, where that tag starts."""
    unquoted: list[int] = []

    def placeholder(match: re.Match[str]) -> str:
        constructs.append(match.group())
        number = len(constructs) - 1
        before = source[: match.start()]
        opened = before.rfind("<")
        in_tag = opened > before.rfind(">")
        owners.append(opened if in_tag else None)
        if in_tag and before[opened:].count('"') % 2 == 0:
            unquoted.append(number)  # an attribute's name, or a value without quotes
        if match.group().startswith("{{") or in_tag or _RAW_TEXT.search(before):
            return f"{tag}x{number}x"
        return f"<!--{tag}x{number}x-->"

    protected = _CONSTRUCT.sub(placeholder, source)
    if unquoted or "{{" in protected or "{%" in protected or "{#" in protected:
        return None  # an unclosed construct: Jinja2 reports it when it is compiled
    inlined = css.inline(protected)
    found = [int(n) for n in re.findall(rf"{tag}x(\d+)x", inlined)]
    in_order: list[int] = []

    def place(n: int) -> tuple[int | None, int]:  # one tag's values may change places
        return (owners[n], 0) if owners[n] is not None else (None, n)

    for _, run in itertools.groupby(found, key=place):
        in_order += sorted(run)
    if in_order != list(range(len(constructs))):
        return None
    return re.sub(
        rf"<!--{tag}x(\d+)x-->|{tag}x(\d+)x",
        lambda m: constructs[int(m.group(1) or m.group(2))],
        inlined,
    )
