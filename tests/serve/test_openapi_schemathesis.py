"""The API keeps the promises of its OpenAPI document: schemathesis generates requests
from the document and sends them to a running ``dbnotify serve``, checking every reply
(no 500; status codes, headers and bodies as documented; problem JSON for errors).

The document is drawn at collection from the same route table the server serves it
from, so that each operation is a test of its own; a test checks that the server's
``/openapi.json`` is that very document. (schemathesis's lazy ``from_fixture`` loader
would read it from the server, but does not run under pytest 9.2: it sets
``request.node._nodeid``, which pytest no longer has.)

Bounded so that it runs in well under two minutes: a few examples per operation,
derandomized (the same requests every run, so a failure reproduces). Deleting channels
runs on a server of its own, where it pulls the ground from under nothing else.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from dbnotify.plugins import default_registry
from dbnotify.serve.app import ENDPOINTS
from dbnotify.serve.openapi import openapi_document

from .conftest import (
    ADMIN_TOKEN,
    DBNOTIFY,
    SEND_TOKEN,
    Served,
    bearer,
    email_config,
    start_server,
)

DOCUMENT = openapi_document(ENDPOINTS, default_registry())
schema = schemathesis.openapi.from_dict(DOCUMENT)

BOUNDED = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
"""Examples per operation: enough to reach each field's edges, few enough to stay short
on a shared machine."""

DELETES_CHANNELS = r"^/v1/channels/"

LENIENT = [positive_data_acceptance]
"""Checks left out. A request the schema allows may still be refused with 422: the API
checks what a JSON Schema cannot say (the data keys an event type requires, a job's
condition, a channel's rules across keys), and says which field and how to fix it. That
such a refusal is documented, well formed and never a 500 the other checks see to."""


def _closed_port() -> int:
    """A port nothing listens on: deliveries fail fast and are retried, which is all a
    run that checks the API's answers needs of them."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server(folder: Path) -> Iterator[Served]:
    served = start_server(email_config(folder, _closed_port()))
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for every operation but deleting channels."""
    yield from _server(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server whose channels may be deleted."""
    yield from _server(tmp_path_factory.mktemp("throwaway"))


def _protected(case: Any) -> bool:
    """Whether the document says the operation needs a token (and the case calls it with
    its own method: schemathesis also tries others, which are 405 before any token)."""
    documented = case.method.upper() == case.operation.method.upper()
    return documented and bool(case.operation.definition.raw.get("security"))


def test_the_server_serves_this_document(server: Served) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@schema.exclude(method="DELETE", path_regex=DELETES_CHANNELS).parametrize()
@BOUNDED
def test_with_the_admin_token(case: Any, server: Served) -> None:
    case.call_and_validate(
        base_url=server.url, headers=bearer(ADMIN_TOKEN), excluded_checks=LENIENT
    )


if any(p.startswith("/v1/channels/") and "delete" in o for p, o in DOCUMENT["paths"].items()):

    @schema.include(method="DELETE", path_regex=DELETES_CHANNELS).parametrize()
    @BOUNDED
    def test_deleting_channels_with_the_admin_token(case: Any, throwaway: Served) -> None:
        case.call_and_validate(
            base_url=throwaway.url, headers=bearer(ADMIN_TOKEN), excluded_checks=LENIENT
        )


@schema.parametrize()
@BOUNDED
def test_without_a_token_protected_operations_are_401(case: Any, server: Served) -> None:
    reply = case.call(base_url=server.url)
    if _protected(case):
        assert reply.status_code == 401, reply.text
        assert reply.headers["content-type"] == ["application/problem+json"]
        assert reply.headers["www-authenticate"] == ['Bearer realm="dbnotify"']
    case.validate_response(reply, excluded_checks=LENIENT)


@schema.exclude(method="DELETE", path_regex=DELETES_CHANNELS).parametrize()
@BOUNDED
def test_a_send_token_is_403_wherever_its_scope_is_not_enough(case: Any, server: Served) -> None:
    reply = case.call(base_url=server.url, headers=bearer(SEND_TOKEN))
    scope = case.operation.definition.raw.get("x-scope")
    # schemathesis also sends some cases without the token, to see them refused (401)
    sent = reply.request.headers.get("Authorization") == f"Bearer {SEND_TOKEN}"
    if _protected(case) and scope != "send" and sent:
        assert reply.status_code == 403, reply.text
        assert reply.json()["detail"] == (
            f"token 'dbackup' may not {case.operation.method.upper()} {case.operation.path}"
        )
    case.validate_response(reply, excluded_checks=LENIENT)


def test_channel_schemas_are_what_dbnotify_schema_prints(server: Served) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    for channel_type in ("email", "webhook"):
        printed = subprocess.run(
            [DBNOTIFY, "schema", channel_type], capture_output=True, text=True, check=True
        )
        expected = json.loads(printed.stdout)
        del expected["$schema"]
        assert schemas[f"channel.{channel_type}"] == expected


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 100_000, "the body is not valid JSON: it is nested too deeply"),
        (
            b'{"type": ' + b"1" * 5000 + b"}",
            "the body is not valid JSON: a number has too many digits",
        ),
        (b'{"type": NaN}', "the body is not valid JSON: NaN is not a JSON number"),
        (
            b'{"type": "x"',
            "the body is not valid JSON at line 1 column 13: Expecting ',' delimiter",
        ),
        (b"\xc3\x28", "the body is not valid JSON: it is not UTF-8"),
    ],
)
def test_bodies_python_reads_but_json_has_not_are_400(
    server: Served, body: bytes, detail: str
) -> None:
    """What Python's json module refuses in other ways than a syntax error (recursion, the
    digits limit) or accepts beyond JSON (NaN): each a 400, never a 500."""
    reply = httpx.post(
        f"{server.url}/v1/events",
        content=body,
        headers={**bearer(ADMIN_TOKEN), "Content-Type": "application/json"},
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["detail"] == detail
