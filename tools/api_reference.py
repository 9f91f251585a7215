"""Write docs/api.md, the HTTP API's reference, from the OpenAPI document the server
serves (:func:`dbnotify.serve.openapi.openapi_document` of the route table), so that
the page can only say what the server does.

    python3 -m uv run python tools/api_reference.py           # (re)write docs/api.md
    python3 -m uv run python tools/api_reference.py --check   # exit 1 if it is stale

``tools/check_docs.py`` runs the check where ``dbnotify[serve]`` is importable, and so
does ``tests/test_api_reference.py`` in ``nox -s tests``. Channel
types' schemas are left out (they depend on the plugins installed): the page points to
``dbnotify schema TYPE`` and ``GET /v1/schema/{type}`` instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api.md"
METHODS = ("get", "post", "put", "patch", "delete")


def document() -> dict[str, Any]:
    """The OpenAPI document of this checkout's route table."""
    from dbnotify.plugins import default_registry
    from dbnotify.serve.app import ENDPOINTS
    from dbnotify.serve.openapi import openapi_document

    return openapi_document(ENDPOINTS, default_registry())


def outside() -> list[tuple[str, str, str, str]]:
    """Endpoints served but left out of the document (not JSON: ``/metrics``): method,
    path, scope and summary."""
    from dbnotify.serve.app import ENDPOINTS

    return [
        (e.method, e.path, e.scope.value if e.scope else "public", e.summary)
        for e in ENDPOINTS
        if not e.in_schema
    ]


def _anchor(name: str) -> str:
    return name.lower().replace(".", "")


def _type(schema: Mapping[str, Any]) -> str:
    """A schema as a short type: ``string``, ``array of [PluginInfo](#plugininfo)``."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "enum" in schema:
        return " | ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type(s) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return f"object of {_type(schema['additionalProperties'])}"
    return str(kind) if kind else "any"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fields(schema: Mapping[str, Any]) -> Iterator[str]:
    """An object schema's properties as a table: field, type, required, meaning."""
    properties = schema.get("properties", {})
    if not properties:
        yield f"{_type(schema)}" + (f": {schema['description']}" if "description" in schema else "")
        return
    yield "| field | type | required | meaning |"
    yield "|---|---|---|---|"
    yield from _rows(schema, "")


def _rows(schema: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """One row per property; an inline object's own properties below it (``user.name``)."""
    required = set(schema.get("required", ()))
    for name, field in schema.get("properties", {}).items():
        meaning = field.get("description", "")
        if "default" in field:
            meaning = f"{meaning} (default `{field['default']}`)".strip()
        yield (
            f"| `{prefix}{name}` | {_cell(_type(field))} | {'yes' if name in required else 'no'} "
            f"| {_cell(meaning)} |"
        )
        if field.get("type") == "object" and "properties" in field:
            yield from _rows(field, f"{prefix}{name}.")


def _operation(method: str, path: str, op: Mapping[str, Any]) -> Iterator[str]:
    yield f"### `{method.upper()} {path}`"
    yield ""
    yield f"{op['summary']}. {op.get('description', '')}".strip()
    yield ""
    parameters = op.get("parameters", [])
    if parameters:
        yield "Parameters:"
        yield ""
        for p in parameters:
            where = p["in"]
            text = f": {p['description']}" if p.get("description") else ""
            yield f"- `{p['name']}` ({where}, {_type(p['schema'])}){text}"
        yield ""
    body = op.get("requestBody")
    if body is not None:
        yield "Body (`application/json`):"
        yield ""
        yield from _fields(body["content"]["application/json"]["schema"])
        yield ""
    for status, reply in op["responses"].items():
        if not status.startswith("2"):
            continue
        content = reply.get("content", {}).get("application/json")
        shown = f": {_type(content['schema'])}" if content else " (no body)"
        if content and "description" in content["schema"]:
            shown += f", {content['schema']['description']}"
        yield f"Reply: `{status}`{shown}"
        yield ""
    errors = [(s, r) for s, r in op["responses"].items() if not s.startswith("2")]
    if errors:
        yield "Errors (problem JSON): " + "; ".join(f"`{s}` {r['description']}" for s, r in errors)
        yield ""


def render(doc: Mapping[str, Any], others: Sequence[tuple[str, str, str, str]] = ()) -> str:
    """The whole page; ``others``: endpoints outside the document (see :func:`outside`)."""
    operations = [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    lines = [
        "# HTTP API reference",
        "",
        "<!-- Written by tools/api_reference.py from the OpenAPI document; do not edit by",
        "hand: run `python3 -m uv run python tools/api_reference.py` after changing an",
        "endpoint. tools/check_docs.py fails while this page is stale. -->",
        "",
        "What `dbnotify serve` answers (see [Running dbnotify as a service](serving.md)).",
        "The server's own `GET /openapi.json` is the machine-readable form of this page",
        "(OpenAPI 3.1). Every path under `/v1` takes a bearer token from `[serve.tokens]`:",
        "`Authorization: Bearer <token>`; each endpoint names the scope it needs (`admin`",
        "allows everything). Bodies and replies are JSON; every error is problem JSON",
        "([below](#errors)).",
        "",
        "| endpoint | scope | what |",
        "|---|---|---|",
    ]
    for method, path, op in operations:
        title = f"{method.upper()} {path}"
        anchor = "".join(c for c in title.lower() if c.isalnum() or c in " -_").replace(" ", "-")
        scope = f"`{op['x-scope']}`" if "x-scope" in op else "public"
        lines.append(f"| [`{title}`](#{anchor}) | {scope} | {_cell(op['summary'])} |")
    for method, path, scope, summary in others:
        shown = f"`{scope}`" if scope != "public" else scope
        lines.append(
            f"| `{method} {path}` | {shown} | {_cell(summary)} (not JSON, not in the document) |"
        )
    lines.append("")
    tags: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for method, path, op in operations:
        tags.setdefault(op.get("tags", ["api"])[0], []).append((method, path, op))
    for tag, members in tags.items():
        lines += [f"## {tag.capitalize()}", ""]
        for method, path, op in members:
            lines += list(_operation(method, path, op))
    schemas = doc["components"]["schemas"]
    lines += ["## Schemas", ""]
    for name, schema in schemas.items():
        if name == "Problem" or name.startswith("channel."):
            continue
        lines += [f"### {name}", "", *_fields(schema), ""]
    lines += [
        "### Channel types",
        "",
        "Each installed channel type's configuration block is in the document as",
        '`components.schemas["channel.TYPE"]`: the JSON Schema that `dbnotify schema TYPE`',
        "prints (and `GET /v1/schema/{type}` returns), without its `$schema` key. They",
        "depend on the plugins installed, so they are not listed here.",
        "",
        "## Errors",
        "",
        "Every error, whatever the endpoint, is `application/problem+json` (RFC 9457), never",
        "a traceback. `errors` names each field that is wrong, the value given (never a",
        "secret's: it is `null` for credential fields) and what to do:",
        "",
        "```json",
        "{",
        '  "type": "about:blank",',
        '  "title": "Unprocessable Content",',
        '  "status": 422,',
        '  "detail": "invalid request",',
        '  "errors": [',
        '    {"field": "data.job_name", "value": "42", "fix": "must be a string"}',
        "  ]",
        "}",
        "```",
        "",
        *_fields(schemas["Problem"]),
        "",
        'A `401` carries `WWW-Authenticate: Bearer realm="dbnotify"`; a `405` an `Allow`',
        "header; an unknown path is a `404` in the same form.",
        "",
    ]
    return "\n".join(lines)


def stale(page: Path = PAGE) -> bool:
    """Whether ``page`` differs from what this checkout's route table gives."""
    return not page.is_file() or page.read_text(encoding="utf-8") != render(document(), outside())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    args = parser.parse_args(argv)
    if args.check:
        if stale():
            print(
                f"{PAGE.relative_to(ROOT)} is stale: run python3 -m uv run python "
                "tools/api_reference.py",
                file=sys.stderr,
            )
            return 1
        return 0
    PAGE.write_text(render(document(), outside()), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
