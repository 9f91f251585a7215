"""The webhook channel's configuration block: defaults, every refusal, secrets kept."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from dbnotify import ConfigError, Secret, load_config
from dbnotify.plugins import default_registry
from dbnotify.schema import channel_schema
from dbnotify_webhook.plugin import channel_info, validate_config
from dbnotify_webhook.settings import Method, WebhookConfig

URL = "https://hooks.example.com/services/T000/B000/XXXXSECRETXXXX"


def errors(options: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(options)
    return [str(issue) for issue in caught.value.issues]


def test_defaults() -> None:
    config = validate_config({"webhook_url": URL})
    assert isinstance(config, WebhookConfig)
    assert config.webhook_url == Secret(URL)
    assert config.method is Method.POST
    assert config.content_type == "application/json"
    assert config.json is True
    assert config.auth_header is None
    assert list(config.headers) == []
    assert config.payload is None
    assert config.request_headers() == {"Content-Type": "application/json"}


def test_channel_info() -> None:
    info = channel_info()
    assert info.config_class is WebhookConfig
    assert info.user_delivery is False
    assert default_registry().get("webhook") is not None


def test_repr_shows_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_KEY", "key-from-the-environment")
    config = validate_config(
        {
            "webhook_url": URL,
            "auth_header": "Bearer very-secret-bearer",
            "headers": {"X-Api-Key": {"env": "HOOK_KEY"}, "X-Source": "dbackup"},
            "payload": '{"text": "{{ message }}"}',
        }
    )
    text = repr(config)
    assert text == (
        "WebhookConfig(webhook_url='https://hooks.example.com', method='POST', "
        "content_type='application/json', auth_header='set', "
        "headers=['X-Api-Key', 'X-Source'], payload='template')"
    )
    for secret in ("XXXXSECRETXXXX", "very-secret-bearer", "key-from-the-environment"):
        assert secret not in text
        assert secret not in str(config.request_headers())


def test_unknown_key_suggests_the_right_one() -> None:
    assert errors({"webhook_url": URL, "auth_headers": "x"}) == [
        "auth_headers: unknown key; did you mean 'auth_header'?"
    ]


def test_missing_url() -> None:
    assert errors({}) == [
        "webhook_url: required, not set (the endpoint's URL, a secret: URLs often carry a "
        'token); e.g. webhook_url = { env = "DBACKUP_WEBHOOK_URL" }'
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example.com/x/SECRET", "must start with https:// or http:// (got ftp://)"),
        ("hooks.example.com/x/SECRET", "must start with https:// or http:// (got no scheme)"),
        ("https:///x/SECRET", "has no host name after https://"),
        ("https://hooks.example.com:99999/SECRET", "has an invalid port number"),
        (
            "https://hooks.example.com/x SECRET",
            "must be a URL without spaces or control characters",
        ),
        ("", "must not be empty"),
    ],
)
def test_bad_url_is_refused_without_echoing_it(url: str, message: str) -> None:
    found = errors({"webhook_url": url})
    assert found == [f"webhook_url: {message}"]
    assert "SECRET" not in found[0]


def test_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_URL", URL)
    config = validate_config({"webhook_url": {"env": "HOOK_URL"}})
    assert config.webhook_url.reveal() == URL
    assert config.webhook_url.source == "env HOOK_URL"


def test_url_from_a_file_is_checked_too(tmp_path: Any) -> None:
    path = tmp_path / "url"
    path.write_text("not-a-url/SECRET\n")
    found = errors({"webhook_url": {"file": str(path)}})
    assert found == ["webhook_url: must start with https:// or http:// (got no scheme)"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "put", " patch "])
def test_methods(method: str) -> None:
    config = validate_config({"webhook_url": URL, "method": method})
    assert config.method.value == method.strip().upper()


def test_get_is_refused_with_the_reason() -> None:
    assert errors({"webhook_url": URL, "method": "GET"}) == [
        "method: must be one of POST, PUT, PATCH (got 'GET'): the notification travels in "
        "the request's body, and a GET request has none"
    ]


def test_unknown_method() -> None:
    assert errors({"webhook_url": URL, "method": "SEND"}) == [
        "method: must be one of POST, PUT, PATCH (got 'SEND')"
    ]


def test_headers_refusals() -> None:
    found = errors(
        {
            "webhook_url": URL,
            "headers": {
                "X-Split": "one\r\nInjected: yes",
                "X-Lf": "one\ntwo",
                "Host": "elsewhere.example.com",
                "content-length": "10",
                "Content-Type": "text/plain",
                "Authorization": "Bearer x",
                "Bad Name": "x",
                "X-Number": 5,
                "X-Accent": "café",
                "X-Ok": "fine",
                "x-ok": "again",
            },
        }
    )
    assert found == [
        "headers.X-Split: must not contain CR or LF (a header value is one line)",
        "headers.X-Lf: must not contain CR or LF (a header value is one line)",
        "headers.Host: cannot be set here: set by the URL",
        "headers.content-length: cannot be set here: computed from the body",
        "headers.Content-Type: cannot be set here: set content_type instead",
        "headers.Authorization: cannot be set here: set auth_header instead (it is kept secret)",
        "headers.Bad Name: not a valid header name (letters, digits and ! # $ % & ' * + - . ^ _ "
        "` | ~)",
        'headers.X-Number: must be a string, { env = "NAME" } or { file = "/path" } (got 5)',
        "headers.X-Accent: must be printable ASCII (letters, digits, punctuation, spaces)",
        "headers.x-ok: given twice (also as 'X-Ok')",
    ]


def test_header_name_with_crlf_is_refused() -> None:
    assert errors({"webhook_url": URL, "headers": {"X-A\r\nHost": "x"}}) == [
        "headers.'X-A\\r\\nHost': a header name must not contain CR or LF"
    ]


def test_secret_header_value_is_checked_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_KEY", "secret\r\nInjected: 1")
    found = errors({"webhook_url": URL, "headers": {"X-Key": {"env": "HOOK_KEY"}}})
    assert found == ["headers.X-Key: must not contain CR or LF (a header value is one line)"]


def test_missing_secret_header_env() -> None:
    found = errors({"webhook_url": URL, "headers": {"X-Key": {"env": "DBNOTIFY_NOT_SET_X"}}})
    assert found == [
        "headers.X-Key: environment variable DBNOTIFY_NOT_SET_X is not set; export it, or use "
        '{ file = "/path" } or a literal value'
    ]


def test_auth_header_is_checked_without_echo() -> None:
    found = errors({"webhook_url": URL, "auth_header": "Bearer abc\r\nX-Evil: 1"})
    assert found == ["auth_header: must not contain CR or LF (a header value is one line)"]
    assert errors({"webhook_url": URL, "auth_header": "  "}) == ["auth_header: must not be empty"]


def test_headers_must_be_a_table() -> None:
    assert errors({"webhook_url": URL, "headers": ["X-A: b"]}) == [
        'headers: must be a table of header names and values, e.g. { "X-Source" = "dbackup" } '
        "(got ['X-A: b'])"
    ]


def test_request_headers_order_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_KEY", "k")
    config = validate_config(
        {
            "webhook_url": URL,
            "content_type": "application/vnd.example+json; charset=utf-8",
            "auth_header": "Bearer b",
            "headers": {"X-Key": {"env": "HOOK_KEY"}, "X-Source": "dbackup"},
        }
    )
    assert config.json is True
    assert config.request_headers() == {
        "Content-Type": "application/vnd.example+json; charset=utf-8",
        "Authorization": Secret("Bearer b"),
        "X-Key": Secret("k"),
        "X-Source": "dbackup",
    }


@pytest.mark.parametrize(
    ("content_type", "as_json"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/cloudevents+json", True),
        ("text/plain", False),
        ("text/plain; charset=utf-8", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_content_types(content_type: str, as_json: bool) -> None:
    assert validate_config({"webhook_url": URL, "content_type": content_type}).json is as_json


def test_bad_content_type() -> None:
    assert errors({"webhook_url": URL, "content_type": "json"}) == [
        "content_type: must be a media type such as application/json or text/plain; "
        "charset=utf-8 (got 'json')"
    ]
    assert errors({"webhook_url": URL, "content_type": "text/plain\r\nX: y"}) == [
        "content_type: must not contain CR or LF (a header value is one line)"
    ]


def test_payload_syntax_error() -> None:
    assert errors({"webhook_url": URL, "payload": '{"text": "{{ message }"}'}) == [
        "payload: syntax error at line 1: unexpected '}'"
    ]


def test_payload_unknown_variable_lists_the_known_ones() -> None:
    assert errors({"webhook_url": URL, "payload": '{"text": "{{ mesage }}"}'}) == [
        "payload: the template failed on a sample notification: 'mesage' is undefined (the "
        "template can use: app_name, color, event_type, fields, job_name, message, n, "
        "notification_id, severity, subject, subject_prefix, text, timestamp, timestamp_iso, "
        "title)"
    ]


def test_payload_that_is_not_json_is_refused_when_loaded() -> None:
    found = errors({"webhook_url": URL, "payload": '{"text": {{ message }}}'})
    assert found == [
        "payload: does not render valid JSON for a sample notification: Expecting value at "
        "line 1 column 10, near '{\"text\": Backup job \\'nightly '; write string values "
        'inside quotes ("{{ message }}": they are inserted JSON-escaped), and other values '
        "bare or with | tojson"
    ]


def test_payload_for_a_text_content_type_is_not_json_checked() -> None:
    config = validate_config(
        {
            "webhook_url": URL,
            "content_type": "text/plain",
            "payload": "{{ subject }}: {{ message }}",
        }
    )
    assert config.payload == "{{ subject }}: {{ message }}"


def test_errors_are_located_under_the_channel() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            {
                "channels": {
                    "hook": {"type": "webhook", "webhook_url": "ftp://x/SECRET", "method": "DELETE"}
                }
            }
        )
    assert [str(i) for i in caught.value.issues] == [
        "channels.hook.webhook_url: must start with https:// or http:// (got ftp://)",
        "channels.hook.method: must be one of POST, PUT, PATCH (got 'DELETE'): the notification "
        "travels in the request's body, and a DELETE request has none",
    ]
    assert "SECRET" not in str(caught.value)


def test_schema_for_host_forms() -> None:
    schema = channel_schema("webhook", channel_info())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["type", "webhook_url"]
    props = schema["properties"]
    assert [k for k, v in props.items() if v.get("x-secret")] == ["webhook_url", "auth_header"]
    assert all(p.get("description") for p in props.values())
    example = {
        "type": "webhook",
        "webhook_url": {"env": "HOOK_URL"},
        "method": "PUT",
        "content_type": "application/json",
        "auth_header": {"file": "/run/secrets/hook"},
        "headers": {"X-Source": "dbackup", "X-Key": {"env": "HOOK_KEY"}},
        "payload": "{}",
    }
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError, match="was unexpected"):
        jsonschema.validate({**example, "webhook_uri": "x"}, schema)


def test_payload_problems_are_listed_with_the_others() -> None:
    assert errors(
        {"webhook_url": "x/SECRET", "method": "GET", "payload": '{"text": "{{ mesage }}"}'}
    ) == [
        "webhook_url: must start with https:// or http:// (got no scheme)",
        "method: must be one of POST, PUT, PATCH (got 'GET'): the notification travels in "
        "the request's body, and a GET request has none",
        "payload: the template failed on a sample notification: 'mesage' is undefined (the "
        "template can use: app_name, color, event_type, fields, job_name, message, n, "
        "notification_id, severity, subject, subject_prefix, text, timestamp, timestamp_iso, "
        "title)",
    ]
    # with a text content type, a payload that is not JSON is fine
    assert errors(
        {"webhook_url": "x", "content_type": "text/plain", "payload": "{{ message }}"}
    ) == ["webhook_url: must start with https:// or http:// (got no scheme)"]
