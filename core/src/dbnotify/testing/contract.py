"""Behavioural contract checks: a base class a channel plugin's tests subclass.

In the style of keyring's and fsspec's test suites: the plugin author subclasses
:class:`ChannelContract` in a test module and provides a few fixtures, the checks come
for free, and they run against a real local server the author starts::

    from dbnotify.testing.contract import ChannelContract

    class TestNtfyContract(ChannelContract):
        @pytest.fixture
        def channel_type(self) -> str:
            return "ntfy"

        @pytest.fixture
        def valid_options(self, httpserver) -> dict[str, Any]:
            httpserver.expect_request("/dbackup").respond_with_data("ok")
            return {"server_url": httpserver.url_for("/"), "topic": "dbackup",
                    "access_token": "tk_contract_secret"}
        ...

The fixtures (all required; a fixture that does not apply may call ``pytest.skip``):

``channel_type``
    the entry-point name of the channel type (the plugin must be installed).
``valid_options``
    a channel block (without ``type``) that delivers to the local server; for a channel
    with ``user_delivery``, the server also accepts :data:`USER_ADDRESS`.
``unreachable_options``
    a block pointing at a closed port: every recipient must fail as *transient*.
``rejecting_options``
    a block the server refuses for good (HTTP 403/404, SMTP 550): *permanent*.
``secret_values``
    the secrets in ``valid_options`` (passwords, tokens, URLs with tokens); none may
    show in a repr, a result, a log record, an error or the ``dbnotify`` command's output.
``received``
    a callable returning how many messages the local server has received so far.

Needs ``pytest-asyncio`` (the tests are ``async`` and marked ``asyncio``, so they run in
strict mode too, on the same event loop as the author's async fixtures). Requires
``pip install 'dbnotify[testing]'``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from dbnotify.config.load import load_config
from dbnotify.config.model import Config
from dbnotify.errors import ConfigError
from dbnotify.events import Event, Notification, Severity, to_notification
from dbnotify.notifier import Notifier
from dbnotify.plugins import ALLOW_ENV, ChannelPlugin, PluginRegistry
from dbnotify.rendering import Renderer
from dbnotify.results import (
    ChannelResult,
    DispatchResult,
    FailureKind,
    RecipientResult,
    Status,
    TestReport,
    TestStage,
)
from dbnotify.secrets import Secret

CHANNEL = "contract"
"""The channel's name in the configurations the contract builds."""
EVENT_TYPE = "contract_check"
TITLE = "dbnotify contract check"
MESSAGE = "Sent by the dbnotify plugin contract suite."
USER_ADDRESS = "contract.user@example.com"
"""The affected user of the user-copy check: the local server must accept it."""
CORE_REASONS = (
    "plugin raised",
    "plugin reported no result",
    "not delivered within",
    "no channel named",
)
"""Reasons the core gives when the plugin raised, returned nothing or hung."""
CORE_STAGES = ("plugin", "deadline", "configuration", "render")
"""Stages the core reports when the plugin's ``test`` raised or hung."""
RENDER_METHODS = frozenset(
    {"subject", "text", "html", "context", "render", "render_json", "render_string"}
)


def contract_event() -> Event:
    """The event every contract delivery carries (outside the catalogue, fully described)."""
    return Event(
        EVENT_TYPE,
        title=TITLE,
        message=MESSAGE,
        severity=Severity.WARNING,
        fields={"Suite": "dbnotify.testing.contract"},
    )


class RecordingRenderer(Renderer):
    """The shared renderer, noting which of its methods were called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def context(self, notification: Notification) -> dict[str, Any]:
        self.calls.append("context")
        return super().context(notification)

    def subject(self, notification: Notification) -> str:
        self.calls.append("subject")
        return super().subject(notification)

    def text(self, notification: Notification) -> str:
        self.calls.append("text")
        return super().text(notification)

    def html(self, notification: Notification) -> str:
        self.calls.append("html")
        return super().html(notification)

    def render(
        self, template: str, notification: Notification, *, html: bool = False, **extra: Any
    ) -> str:
        self.calls.append("render")
        return super().render(template, notification, html=html, **extra)

    def render_json(self, source: str, notification: Notification, **extra: Any) -> str:
        self.calls.append("render_json")
        return super().render_json(source, notification, **extra)

    def render_string(self, source: str, notification: Notification, **extra: Any) -> str:
        self.calls.append("render_string")
        return super().render_string(source, notification, **extra)


# --- configuration files ------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    # JSON string escapes are TOML basic-string escapes; TOML also forbids a raw DEL
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """One value in TOML. Secrets are written as literals (their revealed value)."""
    if isinstance(value, Secret):
        return _toml_string(value.reveal())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        inner = ", ".join(
            f"{_toml_key(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")


def toml_document(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """``{"channels.x": {...}, "routing": {...}}`` as TOML tables (None values left out)."""
    lines: list[str] = []
    for name, table in tables.items():
        lines.append(f"[{'.'.join(_toml_key(part) for part in name.split('.'))}]")
        lines += [
            f"{_toml_key(str(k))} = {toml_value(v)}" for k, v in table.items() if v is not None
        ]
        lines.append("")
    return "\n".join(lines)


def config_for(channel_type: str, options: Mapping[str, Any], *, deadline: float) -> dict[str, Any]:
    """A whole configuration: one channel named ``contract``, routed for every event."""
    return {
        "channels": {CHANNEL: {"type": channel_type, **options}},
        "routing": {"channels": [CHANNEL]},
        "dispatch": {"deadline": deadline},
    }


def write_config(
    path: Path, channel_type: str, options: Mapping[str, Any], *, deadline: float
) -> Path:
    """Write :func:`config_for` as a TOML file (for the ``dbnotify`` command)."""
    whole = config_for(channel_type, options, deadline=deadline)
    path.write_text(
        toml_document(
            {
                f"channels.{CHANNEL}": whole["channels"][CHANNEL],
                "routing": whole["routing"],
                "dispatch": whole["dispatch"],
            }
        ),
        encoding="utf-8",
    )
    return path


# --- what may leak ------------------------------------------------------------------


def result_texts(results: Iterable[RecipientResult]) -> list[str]:
    return [
        text
        for r in results
        for text in (r.recipient, r.reason, r.reply, r.hint, repr(r))
        if text is not None
    ]


def report_texts(report: TestReport) -> list[str]:
    stages = [t for s in report.stages for t in (s.name, s.detail, s.hint, repr(s)) if t]
    return stages + result_texts(report.deliveries)


def dispatch_texts(result: DispatchResult) -> list[str]:
    return [result.reason or "", repr(result), *result_texts(result.recipients)]


def describe_results(results: Iterable[RecipientResult]) -> str:
    return "\n  ".join(
        f"{r.recipient}: {r.status.value}"
        + (f" ({r.kind.value})" if r.kind else "")
        + (f" - {r.reason}" if r.reason else "")
        + (f" - reply {r.reply}" if r.reply else "")
        for r in results
    )


def describe_report(report: TestReport) -> str:
    lines = [
        f"{'ok  ' if s.ok else 'FAIL'} {s.name} ({s.duration:.3f}s) {s.detail}"
        + (f" [hint: {s.hint}]" if s.hint else "")
        for s in report.stages
    ]
    return "\n  ".join([*lines, describe_results(report.deliveries)])


def _revealed(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Mapping):
        return {str(k): _revealed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_revealed(v) for v in value]
    return value


@attrs.frozen
class CliRun:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"$ dbnotify {' '.join(self.args)}\n(exit {self.code})\n{self.out}{self.err}".rstrip()
        )


def dbnotify_command() -> list[str]:
    """The installed ``dbnotify`` script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("dbnotify" + (".exe" if os.name == "nt" else ""))
    if script.exists():
        return [str(script)]
    found = shutil.which("dbnotify")
    return [found] if found else [sys.executable, "-m", "dbnotify.cli"]


async def run_cli(*args: str, env: Mapping[str, str] | None = None, within: float = 90) -> CliRun:
    """Run ``dbnotify ARGS`` without blocking the loop a local server may be running on."""
    proc = await asyncio.create_subprocess_exec(
        *dbnotify_command(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliRun(args, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


class ChannelContract:
    """What every channel plugin must do, checked against a real local server.

    Subclass it as ``class TestXContract(ChannelContract)`` and provide the fixtures
    listed in this module's docstring. Each check builds its own configuration with one
    channel named ``contract`` from the options you give, loads the plugin through its
    installed entry point (this channel type alone), and closes what it opened.
    """

    deadline: ClassVar[float] = 30.0
    """``dispatch.deadline`` of the configurations built here."""
    server_loggers: ClassVar[tuple[str, ...]] = (
        "werkzeug",
        "pytest_httpserver",
        "mail.log",
        "aiosmtpd",
    )
    """Loggers of the local test servers: they see secrets by nature; their records are
    not searched for secrets. Add yours if your server logs what it receives."""

    # --- helpers ------------------------------------------------------------------

    def registry(self, channel_type: str) -> PluginRegistry:
        """A registry that loads the installed plugin of ``channel_type`` alone."""
        return PluginRegistry(environ={ALLOW_ENV: channel_type})

    def plugin(self, channel_type: str) -> ChannelPlugin:
        registry = self.registry(channel_type)
        found = registry.get(channel_type)
        if found is None:
            pytest.fail(registry.explain_missing(channel_type), pytrace=False)
        return found

    def config(
        self, channel_type: str, options: Mapping[str, Any], registry: PluginRegistry | None = None
    ) -> Config:
        """The whole configuration (channel ``contract``), validated by the plugin."""
        whole = config_for(channel_type, options, deadline=self.deadline)
        try:
            return load_config(whole, registry or self.registry(channel_type))
        except ConfigError as exc:
            pytest.fail(f"the options given to the contract are not valid:\n{exc}", pytrace=False)

    def notifier(
        self, channel_type: str, options: Mapping[str, Any], renderer: Renderer | None = None
    ) -> Notifier:
        registry = self.registry(channel_type)
        config = self.config(channel_type, options, registry)
        return Notifier(config, plugins=registry, renderer=renderer)

    async def send_directly(
        self,
        channel_type: str,
        options: Mapping[str, Any],
        *,
        recipients: tuple[str, ...] | None = None,
        retry_only: tuple[str, ...] | None = None,
    ) -> Sequence[RecipientResult]:
        """The plugin's own ``send``, without the core's safety net: it must not raise."""
        plugin = self.plugin(channel_type)
        config = plugin.validate_config(options)
        notification = to_notification(contract_event())
        try:
            async with asyncio.timeout(self.deadline):
                results = await plugin.send(
                    config, notification, Renderer(), recipients, retry_only
                )
        except TimeoutError:
            pytest.fail(
                f"send did not return within {self.deadline:g}s: a delivery failure must "
                "come back as a failed result, in bounded time (use timeouts)",
                pytrace=False,
            )
        except Exception as exc:  # noqa: BLE001 - that is the finding
            pytest.fail(
                f"send raised {type(exc).__name__}: {exc}; a delivery failure must be a "
                "failed RecipientResult, never an exception",
                pytrace=False,
            )
        finally:
            await plugin.shutdown()
        return results

    @staticmethod
    def assert_no_secret(texts: Iterable[str], secret_values: Sequence[str], where: str) -> None:
        for text in texts:
            for secret in secret_values:
                assert secret not in text, f"a secret shows in {where}: {text!r}"

    def assert_no_secret_in_logs(
        self, caplog: pytest.LogCaptureFixture, secret_values: Sequence[str]
    ) -> None:
        for record in caplog.records:
            if any(
                record.name == n or record.name.startswith(n + ".") for n in self.server_loggers
            ):
                continue
            texts = [record.getMessage()]
            if record.exc_info and record.exc_info[1] is not None:
                texts.append(repr(record.exc_info[1]))
                texts.append(logging.Formatter().formatException(record.exc_info))
            self.assert_no_secret(texts, secret_values, f"a log record of {record.name!r}")

    @staticmethod
    def assert_results(results: Sequence[RecipientResult]) -> None:
        """One result per recipient, each with a status, the recipients told apart."""
        assert results, "send returned no result; return one RecipientResult per recipient"
        for r in results:
            assert isinstance(r, RecipientResult), f"not a RecipientResult: {r!r}"
            assert isinstance(r.status, Status), f"no status: {r!r}"
            assert isinstance(r.recipient, str), f"a result names no recipient: {r!r}"
            assert r.recipient.strip(), f"a result names no recipient: {r!r}"
            if r.status is Status.FAILED:
                assert isinstance(r.kind, FailureKind), f"a failure without its kind: {r!r}"
                assert (r.reason or "").strip(), f"a failure without a reason: {r!r}"
        labels = [r.recipient for r in results]
        assert len(set(labels)) == len(labels), (
            f"recipients are not told apart (the outbox retries them by name): {labels}"
        )

    @staticmethod
    def channel_result(result: DispatchResult) -> ChannelResult:
        found = [c for c in result.channels if c.channel == CHANNEL]
        assert len(found) == 1, f"expected one result for channel {CHANNEL!r}: {result!r}"
        return found[0]

    @staticmethod
    def assert_stages(report: TestReport) -> None:
        assert isinstance(report, TestReport), f"test returned {report!r}"
        assert report.stages, "test reported no stage; name what was checked"
        for stage in report.stages:
            assert isinstance(stage, TestStage), f"not a TestStage: {stage!r}"
            assert isinstance(stage.name, str), f"unnamed: {stage!r}"
            assert stage.name.strip(), f"unnamed: {stage!r}"
            assert isinstance(stage.ok, bool), f"ok is not a bool: {stage!r}"
            assert isinstance(stage.duration, int | float), f"no duration: {stage!r}"
            assert stage.duration >= 0, f"a negative duration: {stage!r}"
            if not stage.ok:
                assert stage.detail.strip(), f"a failed stage says nothing: {stage!r}"

    @staticmethod
    async def eventually(check: Callable[[], bool], within: float = 5.0) -> bool:
        """Poll ``check`` (the server may note a message just after answering)."""
        end = time.monotonic() + within
        while not check():
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.05)
        return True

    # --- the checks ---------------------------------------------------------------

    def test_secret_values_are_in_the_options(
        self, valid_options: Mapping[str, Any], secret_values: Sequence[str]
    ) -> None:
        """The secrets checks are not vacuous: every secret is in the valid options."""
        text = json.dumps(_revealed(valid_options), ensure_ascii=False)
        for secret in secret_values:
            assert isinstance(secret, str), f"secret_values must be strings: {secret!r}"
            assert len(secret) >= 4, f"secret_values must have 4 characters or more: {secret!r}"
            assert secret in text or json.dumps(secret)[1:-1] in text, (
                f"secret {secret[:2]}... is not in valid_options"
            )

    def test_config_repr_and_errors_never_show_secrets(
        self,
        channel_type: str,
        valid_options: Mapping[str, Any],
        secret_values: Sequence[str],
    ) -> None:
        plugin = self.plugin(channel_type)
        config = plugin.validate_config(valid_options)
        assert isinstance(config, plugin.info.config_class)
        whole = self.config(channel_type, valid_options)
        texts = [repr(config), str(config), repr(whole.channels[CHANNEL]), repr(whole)]
        self.assert_no_secret(texts, secret_values, "the config's repr")
        with pytest.raises(ConfigError) as refused:
            plugin.validate_config({**valid_options, "contract_unknown_key": True})
        self.assert_no_secret([str(refused.value)], secret_values, "a configuration error")

    @pytest.mark.asyncio
    async def test_send_returns_a_result_per_recipient(
        self,
        channel_type: str,
        valid_options: Mapping[str, Any],
        received: Callable[[], int],
        secret_values: Sequence[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        before = received()
        async with self.notifier(channel_type, valid_options) as notifier:
            result = await notifier.notify(contract_event())
        assert isinstance(result, DispatchResult)
        channel = self.channel_result(result)
        self.assert_results(channel.recipients)
        assert all(r.status is Status.DELIVERED for r in channel.recipients), (
            "valid_options did not deliver:\n  " + describe_results(channel.recipients)
        )
        assert await self.eventually(lambda: received() > before), (
            "every recipient was reported delivered, but the server received nothing"
        )
        self.assert_no_secret(dispatch_texts(result), secret_values, "a result")
        self.assert_no_secret_in_logs(caplog, secret_values)

    @pytest.mark.asyncio
    async def test_a_retry_goes_to_the_named_recipients_only(
        self,
        channel_type: str,
        valid_options: Mapping[str, Any],
        received: Callable[[], int],
    ) -> None:
        first = await self.send_directly(channel_type, valid_options)
        self.assert_results(first)
        assert all(r.status is Status.DELIVERED for r in first), (
            "valid_options did not deliver:\n  " + describe_results(first)
        )
        named = (first[-1].recipient,)
        before = received()
        again = await self.send_directly(channel_type, valid_options, retry_only=named)
        self.assert_results(again)
        others = [r.recipient for r in again if r.recipient not in named]
        assert not others, (
            f"a retry for {named} also reported {others}: they got the notification "
            "already, and the outbox would record them twice; deliver to retry_only alone"
        )
        assert all(r.status is Status.DELIVERED for r in again), describe_results(again)
        assert await self.eventually(lambda: received() > before), (
            "the retry was reported delivered, but the server received nothing"
        )

    @pytest.mark.asyncio
    async def test_a_user_copy_goes_to_that_user_alone(
        self,
        channel_type: str,
        valid_options: Mapping[str, Any],
        received: Callable[[], int],
    ) -> None:
        if not self.plugin(channel_type).info.user_delivery:
            pytest.skip("the channel does not deliver users' copies (user_delivery=False)")
        before = received()
        results = await self.send_directly(channel_type, valid_options, recipients=(USER_ADDRESS,))
        self.assert_results(results)
        assert [r.recipient for r in results] == [USER_ADDRESS], (
            f"a copy for the user {USER_ADDRESS} must go to that user alone, named as "
            "given; the channel's own recipients must not receive it:\n  "
            + describe_results(results)
        )
        assert results[0].status is Status.DELIVERED, describe_results(results)
        assert await self.eventually(lambda: received() > before), (
            "the user's copy was reported delivered, but the server received nothing"
        )

    @pytest.mark.asyncio
    async def test_unreachable_server_is_a_transient_failure(
        self,
        channel_type: str,
        unreachable_options: Mapping[str, Any],
        secret_values: Sequence[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        direct = await self.send_directly(channel_type, unreachable_options)
        self.assert_results(direct)
        async with self.notifier(channel_type, unreachable_options) as notifier:
            result = await notifier.notify(contract_event())
        recipients = self.channel_result(result).recipients
        self.assert_results(recipients)
        for results in (direct, recipients):
            assert all(
                r.status is Status.FAILED and r.kind is FailureKind.TRANSIENT for r in results
            ), "an unreachable server must fail every recipient as transient:\n  " + (
                describe_results(results)
            )
            assert not any(any(c in (r.reason or "") for c in CORE_REASONS) for r in results), (
                "the core had to step in:\n  " + describe_results(results)
            )
        self.assert_no_secret(
            [*dispatch_texts(result), *result_texts(direct)], secret_values, "a result"
        )
        self.assert_no_secret_in_logs(caplog, secret_values)

    @pytest.mark.asyncio
    async def test_refusal_is_a_permanent_failure(
        self,
        channel_type: str,
        rejecting_options: Mapping[str, Any],
        secret_values: Sequence[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        direct = await self.send_directly(channel_type, rejecting_options)
        self.assert_results(direct)
        async with self.notifier(channel_type, rejecting_options) as notifier:
            result = await notifier.notify(contract_event())
        recipients = self.channel_result(result).recipients
        self.assert_results(recipients)
        for results in (direct, recipients):
            assert all(
                r.status is Status.FAILED and r.kind is FailureKind.PERMANENT for r in results
            ), "a refusal for good must fail every recipient as permanent:\n  " + (
                describe_results(results)
            )
            assert not any(any(c in (r.reason or "") for c in CORE_REASONS) for r in results), (
                "the core had to step in:\n  " + describe_results(results)
            )
        self.assert_no_secret(
            [*dispatch_texts(result), *result_texts(direct)], secret_values, "a result"
        )
        self.assert_no_secret_in_logs(caplog, secret_values)

    @pytest.mark.asyncio
    async def test_test_reports_each_stage_and_sends(
        self,
        channel_type: str,
        valid_options: Mapping[str, Any],
        received: Callable[[], int],
        secret_values: Sequence[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        before = received()
        async with self.notifier(channel_type, valid_options) as notifier:
            report = await notifier.test(CHANNEL)
        self.assert_stages(report)
        assert not any(s.name in CORE_STAGES for s in report.stages), (
            "the core had to step in:\n  " + describe_report(report)
        )
        assert report.ok, "the test of valid_options failed:\n  " + describe_report(report)
        assert report.deliveries, "a test that sent a message names whom it went to"
        self.assert_results(report.deliveries)
        assert await self.eventually(lambda: received() > before), (
            "the test reported a delivery, but the server received nothing"
        )
        self.assert_no_secret(report_texts(report), secret_values, "a test report")
        self.assert_no_secret_in_logs(caplog, secret_values)

    @pytest.mark.asyncio
    async def test_test_without_sending_sends_nothing(
        self,
        channel_type: str,
        valid_options: Mapping[str, Any],
        received: Callable[[], int],
        secret_values: Sequence[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        before = received()
        async with self.notifier(channel_type, valid_options) as notifier:
            report = await notifier.test(CHANNEL, send_message=False)
        self.assert_stages(report)
        assert report.ok, "the test of valid_options failed:\n  " + describe_report(report)
        assert report.deliveries == (), f"send_message=False delivered: {report.deliveries}"
        await asyncio.sleep(0.2)
        assert received() == before, "send_message=False, yet the server received a message"
        self.assert_no_secret(report_texts(report), secret_values, "a test report")
        self.assert_no_secret_in_logs(caplog, secret_values)

    @pytest.mark.asyncio
    async def test_test_of_an_unreachable_server_fails_a_stage(
        self,
        channel_type: str,
        unreachable_options: Mapping[str, Any],
        secret_values: Sequence[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        async with self.notifier(channel_type, unreachable_options) as notifier:
            report = await notifier.test(CHANNEL)
        self.assert_stages(report)
        assert not report.ok, "the test of an unreachable server passed"
        assert not any(s.name in CORE_STAGES for s in report.stages), (
            "the core had to step in:\n  " + describe_report(report)
        )
        assert any(not s.ok for s in report.stages), "no stage failed:\n  " + describe_report(
            report
        )
        self.assert_no_secret(report_texts(report), secret_values, "a test report")
        self.assert_no_secret_in_logs(caplog, secret_values)

    @pytest.mark.asyncio
    async def test_messages_go_through_the_shared_renderer(
        self, channel_type: str, valid_options: Mapping[str, Any]
    ) -> None:
        renderer = RecordingRenderer()
        async with self.notifier(channel_type, valid_options, renderer) as notifier:
            result = await notifier.notify(contract_event())
            sent = set(renderer.calls)
            renderer.calls.clear()
            report = await notifier.test(CHANNEL)
            tested = set(renderer.calls)
        assert result.ok, describe_results(result.recipients)
        assert sent & RENDER_METHODS, (
            "send rendered nothing through the renderer it was given; render every text "
            "with renderer.subject/text/html/render_string (operators' templates, the "
            "subject prefix and the time zone apply then)"
        )
        assert report.ok, describe_report(report)
        assert tested & RENDER_METHODS, "test sent a message without the renderer it was given"

    @pytest.mark.asyncio
    async def test_cli_never_shows_secrets(
        self,
        channel_type: str,
        valid_options: Mapping[str, Any],
        secret_values: Sequence[str],
        tmp_path: Path,
    ) -> None:
        good = write_config(
            tmp_path / "dbnotify.toml", channel_type, valid_options, deadline=self.deadline
        )
        bad = write_config(
            tmp_path / "bad.toml",
            channel_type,
            {**valid_options, "contract_unknown_key": True},
            deadline=self.deadline,
        )
        env = {ALLOW_ENV: channel_type}
        runs = [
            (0, await run_cli("validate", "-c", str(good), env=env)),
            (2, await run_cli("validate", "-c", str(bad), env=env)),
            (
                0,
                await run_cli(
                    "send",
                    EVENT_TYPE,
                    "--title",
                    TITLE,
                    "--message",
                    MESSAGE,
                    "--severity",
                    "warning",
                    "-c",
                    str(good),
                    env=env,
                ),
            ),
            (0, await run_cli("test", CHANNEL, "-c", str(good), env=env)),
            (0, await run_cli("test", CHANNEL, "--no-send", "-c", str(good), env=env)),
        ]
        for expected, run in runs:
            self.assert_no_secret([run.out, run.err], secret_values, f"`{run}`")
            assert run.code == expected, f"expected exit {expected}:\n{run}"
