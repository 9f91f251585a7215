"""The contract suite itself: it passes a plugin that keeps the rules, and catches each
plugin that breaks one.

A small in-memory channel plugin is run through ``ChannelContract`` in a pytest of its
own (pytester, in a subprocess), once sound and once per flaw. Its ``registry`` is built
by hand (the contract's ``registry`` method is overridden), so the one check that needs
an installed entry point, the ``dbnotify`` command's output, is left out here; the
plugins of the workspace run it for real.
"""

from __future__ import annotations

import pytest

from dbnotify.secrets import Secret
from dbnotify.testing.contract import config_for, toml_document, toml_value

pytest_plugins = ["pytester"]

PLUGIN = """
import logging

import attrs

from dbnotify.config.fields import setting
from dbnotify.config.structure import structure
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.results import FailureKind, RecipientResult, Status, TestReport, TestStage
from dbnotify.secrets import Secret

FLAWS = set()
RECEIVED = []
log = logging.getLogger("memoryplugin")


@attrs.frozen
class MemoryConfig:
    target: str = setting(description="ok, down or refuse")
    token: Secret = setting(description="the token (secret)")


@hookimpl
def channel_info():
    return ChannelInfo(description="memory", config_class=MemoryConfig, user_delivery=True)


@hookimpl
def validate_config(options):
    return structure(MemoryConfig, options)


def deliver(config, text, to):
    if "log_secret" in FLAWS:
        log.debug("using token %s", config.token.reveal())
    if config.target == "down":
        if "raise" in FLAWS:
            raise ConnectionRefusedError("down")
        leak = f" ({config.token.reveal()})" if "leak_reason" in FLAWS else ""
        return RecipientResult.failed(to, FailureKind.TRANSIENT, "connection refused" + leak)
    if config.target == "refuse":
        kind = FailureKind.TRANSIENT if "refusal_transient" in FLAWS else FailureKind.PERMANENT
        return RecipientResult.failed(to, kind, "403 refused")
    RECEIVED.append(text)
    return RecipientResult.delivered(to)


@hookimpl
async def send(config, notification, renderer, recipients, retry_only):
    text = notification.title if "no_renderer" in FLAWS else renderer.text(notification)
    to = ("inbox", "archive") if recipients is None or "user_copy_to_all" in FLAWS else recipients
    if retry_only is not None and "ignores_retry_only" not in FLAWS:
        to = tuple(r for r in to if r in retry_only)
    return [deliver(config, text, r) for r in to]


@hookimpl
async def test(config, notification, renderer, send_message):
    up = config.target != "down"
    stages = [TestStage("reach", up, "up" if up else "connection refused", 0.001)]
    if up and (send_message or "ignores_send_message" in FLAWS):
        result, _ = await send(config, notification, renderer, None, None)
        stages.append(TestStage("send", result.status is Status.DELIVERED, "sent", 0.001))
        return TestReport(tuple(stages), (result,))
    return TestReport(tuple(stages))
"""

TESTS = """
import pytest

import memoryplugin
from dbnotify.plugins import PluginRegistry
from dbnotify.testing.contract import ChannelContract

memoryplugin.FLAWS.update({flaws!r})
TOKEN = "tok-Secret-4711"


class TestMemoryContract(ChannelContract):
    def registry(self, channel_type):
        registry = PluginRegistry(entry_points=False)
        registry.register(channel_type, memoryplugin)
        return registry

    @pytest.fixture
    def channel_type(self):
        return "memory"

    @pytest.fixture
    def valid_options(self):
        return {{"target": "ok", "token": TOKEN}}

    @pytest.fixture
    def unreachable_options(self):
        return {{"target": "down", "token": TOKEN}}

    @pytest.fixture
    def rejecting_options(self):
        return {{"target": "refuse", "token": TOKEN}}

    @pytest.fixture
    def secret_values(self):
        return [TOKEN]

    @pytest.fixture
    def received(self):
        return lambda: len(memoryplugin.RECEIVED)
"""

CHECKS = 11
"""The contract's checks, without the one that runs the ``dbnotify`` command."""


def run(pytester: pytest.Pytester, *flaws: str) -> pytest.RunResult:
    pytester.makepyfile(memoryplugin=PLUGIN, test_memory=TESTS.format(flaws=set(flaws)))
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-k",
        "not cli",
        "-rf",
    )


def test_a_sound_plugin_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester)
    result.assert_outcomes(passed=CHECKS, deselected=1)


@pytest.mark.parametrize(
    ("flaw", "failing", "message"),
    [
        (
            "leak_reason",
            ["test_unreachable_server_is_a_transient_failure"],
            "*a secret shows in a result*",
        ),
        ("raise", ["test_unreachable_server_is_a_transient_failure"], "*send raised*"),
        (
            "refusal_transient",
            ["test_refusal_is_a_permanent_failure"],
            "*must fail every recipient as permanent*",
        ),
        (
            "no_renderer",
            ["test_messages_go_through_the_shared_renderer"],
            "*send rendered nothing through the renderer*",
        ),
        (
            "ignores_send_message",
            ["test_test_without_sending_sends_nothing"],
            "*send_message=False delivered*",
        ),
        (
            "ignores_retry_only",
            ["test_a_retry_goes_to_the_named_recipients_only"],
            "*a retry for ('archive',) also reported ?'inbox'?: they got the notification already*",
        ),
        (
            "user_copy_to_all",
            ["test_a_user_copy_goes_to_that_user_alone"],
            "*a copy for the user contract.user@example.com must go to that user alone*",
        ),
        (
            "log_secret",
            [
                "test_send_returns_a_result_per_recipient",
                "test_unreachable_server_is_a_transient_failure",
                "test_refusal_is_a_permanent_failure",
                "test_test_reports_each_stage_and_sends",
            ],
            "*a secret shows in a log record of 'memoryplugin'*",
        ),
    ],
)
def test_a_flawed_plugin_is_caught(
    pytester: pytest.Pytester, flaw: str, failing: list[str], message: str
) -> None:
    result = run(pytester, flaw)
    result.assert_outcomes(passed=CHECKS - len(failing), failed=len(failing), deselected=1)
    result.stdout.fnmatch_lines([f"FAILED *::TestMemoryContract::{name}*" for name in failing])
    result.stdout.fnmatch_lines([message])


def test_configurations_are_written_as_toml_with_secrets_revealed() -> None:
    whole = config_for("memory", {"token": Secret('s3cr"et'), "n": 3, "on": True}, deadline=5)
    text = toml_document(
        {
            "channels.contract": whole["channels"]["contract"],
            "routing": whole["routing"],
            "dispatch": whole["dispatch"],
        }
    )
    assert text == (
        "[channels.contract]\n"
        'type = "memory"\n'
        'token = "s3cr\\"et"\n'
        "n = 3\n"
        "on = true\n"
        "\n"
        "[routing]\n"
        'channels = ["contract"]\n'
        "\n"
        "[dispatch]\n"
        "deadline = 5\n"
    )
    assert toml_value({"env": "X", "unset": None}) == '{ env = "X" }'
    assert (
        toml_value([1.5, "a\x7fb", {"weird key": 1}]) == '[1.5, "a\\u007fb", { "weird key" = 1 }]'
    )


# --- the generic checks ---------------------------------------------------------------

SOUND = """
import attrs

from dbnotify.config.fields import setting
from dbnotify.config.structure import structure
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.results import TestReport
from dbnotify.secrets import Secret


def _token(_inst, _attr, value):
    if len(value.reveal()) < 40:
        raise ValueError("must be 40 characters")


@attrs.frozen
class FakeConfig:
    url: str = setting(description="where to")
    token: Secret = setting(description="the token", validator=_token)
    retries: int = setting(default=3, description="attempts")


@hookimpl
def channel_info():
    return ChannelInfo(description="fake channel", config_class=FakeConfig)


@hookimpl
def validate_config(options):
    return structure(FakeConfig, options)


@hookimpl
async def send(config, notification, renderer, recipients):
    return []


@hookimpl
async def test(config, send_message):
    return TestReport(())
"""

GENERIC_CHECKS = 8


def fake_plugin(pytester: pytest.Pytester, source: str, *, requires: str = "dbnotify") -> None:
    """``fakeplug``: a module and its distribution's metadata, found on PYTHONPATH."""
    pytester.makepyfile(fakeplug=source)
    info = pytester.mkdir("fakeplug-0.1.dist-info")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n"
        + (f"Requires-Dist: {requires}\n" if requires else "")
    )
    (info / "entry_points.txt").write_text("[dbnotify.channels]\nfake = fakeplug\n")


def generic(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pyargs", "dbnotify.testing.generic", "--channel-type=fake"
    )


def test_generic_checks_pass_a_sound_plugin(pytester: pytest.Pytester) -> None:
    fake_plugin(pytester, SOUND)
    generic(pytester).assert_outcomes(passed=GENERIC_CHECKS)


@pytest.mark.parametrize(
    ("change", "failing", "message"),
    [
        (
            (
                'token: Secret = setting(description="the token", validator=_token)',
                "token: Secret = attrs.field(validator=_token)",
            ),
            ["test_config_class_describes_every_field"],
            "*fields without a description: token*",
        ),
        (
            ("return structure(FakeConfig, options)", "return FakeConfig(**options)"),
            [
                "test_empty_block_is_refused_with_located_issues",
                "test_unknown_key_is_reported",
                "test_wrong_types_are_reported_at_the_field",
            ],
            "*issues without a path*",
        ),
        (
            (
                'url: str = setting(description="where to")',
                'url: typing.Any = setting(description="where to")',
            ),
            ["test_wrong_types_are_reported_at_the_field"],
            "*no issue at these fields' paths*: url*",
        ),
        (
            (
                'raise ValueError("must be 40 characters")',
                'raise ValueError(f"must be 40 characters: {value.reveal()}")',
            ),
            ["test_secrets_are_not_echoed_in_errors"],
            "*the value of secret field 'token' shows in*",
        ),
        (
            ("async def send(", "def send("),
            ["test_hooks_match_the_specs"],
            "*send: write it `async def`*",
        ),
    ],
)
def test_generic_checks_catch_a_flawed_plugin(
    pytester: pytest.Pytester, change: tuple[str, str], failing: list[str], message: str
) -> None:
    old, new = change
    assert old in SOUND
    fake_plugin(pytester, "import typing\n" + SOUND.replace(old, new))
    result = generic(pytester)
    result.assert_outcomes(passed=GENERIC_CHECKS - len(failing), failed=len(failing))
    result.stdout.fnmatch_lines([f"FAILED *{name}[[]fake[]]*" for name in failing])
    result.stdout.fnmatch_lines([message])


def test_generic_checks_want_the_dependency_on_dbnotify(pytester: pytest.Pytester) -> None:
    fake_plugin(pytester, SOUND, requires="")
    result = generic(pytester)
    result.assert_outcomes(passed=GENERIC_CHECKS - 1, failed=1)
    result.stdout.fnmatch_lines(["*fakeplug does not declare its dependency on dbnotify*"])


def test_generic_checks_report_a_plugin_that_does_not_load(pytester: pytest.Pytester) -> None:
    fake_plugin(pytester, "import not_installed_anywhere\n" + SOUND)
    result = generic(pytester)
    result.stdout.fnmatch_lines(
        ["*failed to load: import failed: ModuleNotFoundError: No module named*"]
    )
    assert result.ret != 0
