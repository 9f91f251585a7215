"""The server's frame: start-up, authentication, scopes and the shape of every error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from .conftest import ADMIN_TOKEN, DBNOTIFY, READ_TOKEN, SEND_TOKEN, Served, bearer, server_env


async def test_every_api_path_needs_a_token(served: Served) -> None:
    async with served.client(token=None) as client:
        reply = await client.get("/v1/plugins")
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["www-authenticate"] == 'Bearer realm="dbnotify"'
    assert reply.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "authentication required",
        "errors": [
            {
                "field": "Authorization",
                "value": None,
                "fix": "send the header Authorization: Bearer <token>",
            }
        ],
    }


async def test_an_unknown_token_is_refused_without_echoing_it(served: Served) -> None:
    async with served.client(token="x" * 40) as client:
        reply = await client.get("/v1/plugins")
    assert reply.status_code == 401
    assert reply.json()["detail"] == "unknown token"
    assert "x" * 40 not in reply.text


async def test_a_send_token_may_not_read(served: Served) -> None:
    async with served.client(token=SEND_TOKEN) as client:
        reply = await client.get("/v1/plugins")
    assert reply.status_code == 403
    assert reply.json()["detail"] == "token 'dbackup' may not GET /v1/plugins"
    (error,) = reply.json()["errors"]
    assert error["value"] == "send"
    assert "needs the 'read' scope (or 'admin')" in error["fix"]
    assert SEND_TOKEN not in reply.text


async def test_read_and_admin_tokens_read_plugins(served: Served) -> None:
    for token in (READ_TOKEN, ADMIN_TOKEN):
        async with served.client(token=token) as client:
            reply = await client.get("/v1/plugins")
        assert reply.status_code == 200
        types = [p["type"] for p in reply.json()["plugins"]]
        assert {"email", "webhook"} <= set(types)


def test_schema_is_what_dbnotify_schema_prints(served: Served) -> None:
    with httpx.Client(base_url=served.url, headers=bearer(READ_TOKEN)) as client:
        reply = client.get("/v1/schema/email")
        missing = client.get("/v1/schema/emial")
    printed = subprocess.run(
        [DBNOTIFY, "schema", "email"], capture_output=True, text=True, check=True
    )
    assert reply.json() == json.loads(printed.stdout)
    assert missing.status_code == 404
    assert "did you mean 'email'?" in missing.json()["errors"][0]["fix"]


async def test_unknown_paths_and_methods_are_problem_json(served: Served) -> None:
    async with served.client() as client:
        missing = await client.get("/v2/nothing")
        wrong = await client.delete("/v1/plugins")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no such path: /v2/nothing"
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"


def test_serve_without_tokens_says_how_to_add_one(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[channels]\n", encoding="utf-8")
    run = subprocess.run(
        [DBNOTIFY, "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
    )
    assert run.returncode == 2
    assert "[serve.tokens] has no token" in run.stderr
    assert "[serve.tokens.dbackup]" in run.stderr


def test_a_short_token_is_refused_by_validate(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[serve.tokens.x]\nsecret = "tiny-pw"\nscopes = ["send"]\n', encoding="utf-8")
    run = subprocess.run(
        [DBNOTIFY, "validate", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "serve.tokens.x.secret: an API token must be at least 24 characters" in (
        run.stdout + run.stderr
    )
    assert "tiny-pw" not in run.stdout + run.stderr


async def test_openapi_document_is_public_and_lists_channel_schemas(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        reply = await client.get("/openapi.json")
    document = reply.json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/plugins" in document["paths"]
    assert "channel.email" in document["components"]["schemas"]


def test_ctrl_c_stops_the_server_cleanly(served: Served) -> None:
    """Ctrl-C (SIGINT) ends requests and the worker, says so, and exits 0."""
    assert served.stop() == 0
    assert served.output().splitlines()[-1] == "dbnotify serve: stopped"
    assert "Traceback" not in served.output()
