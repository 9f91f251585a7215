"""docs/api.md says what the server serves: it is what ``tools/api_reference.py`` writes
from the OpenAPI document of this checkout's route table (``nox -s tests`` has the
``serve`` extra; ``nox -s docs`` does not, so its check_docs run leaves this page out).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("starlette", reason="the serve extra is not installed")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "tools/api_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


api_reference = _load()


def test_docs_api_md_is_up_to_date() -> None:
    assert not api_reference.stale(), (
        "docs/api.md is stale: run python3 -m uv run python tools/api_reference.py"
    )


def test_every_operation_has_its_section_and_scope() -> None:
    document = api_reference.document()
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert f"### `{method.upper()} {path}`" in page
            scope = operation.get("x-scope")
            if scope is not None:
                assert f"Needs a token with the `{scope}` scope" in page
    assert "| `GET /metrics` | `read` |" in page
