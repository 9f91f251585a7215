"""Everything a channel plugin needs from dbnotify, in one import.

A channel type is a distribution with an entry point in the group ``dbnotify.channels``
(``ntfy = "dbnotify_ntfy"``) whose module implements four hooks::

    from collections.abc import Mapping, Sequence
    from typing import Any

    import attrs

    from dbnotify.channel import (
        ChannelInfo, Notification, RecipientResult, Renderer, Secret, TestReport,
        hookimpl, setting, structure,
    )


    @attrs.frozen
    class NtfyConfig:
        topic: str = setting(description="topic to publish to", example='"dbackup"')
        access_token: Secret | None = setting(default=None, description="token (secret)")


    @hookimpl
    def channel_info() -> ChannelInfo:
        return ChannelInfo(description="ntfy: push notifications", config_class=NtfyConfig)


    @hookimpl
    def validate_config(options: Mapping[str, Any]) -> NtfyConfig:
        return structure(NtfyConfig, options)  # every problem at once, each located


    @hookimpl
    async def send(
        config: NtfyConfig, notification: Notification, renderer: Renderer
    ) -> Sequence[RecipientResult]:
        ...  # render through `renderer`; a failure is a RecipientResult.failed(...)


    @hookimpl
    async def test(
        config: NtfyConfig, notification: Notification, renderer: Renderer, send_message: bool
    ) -> TestReport:
        ...  # one TestStage per thing checked

A field of a type of your own gets a converter of your own and, for ``dbnotify
schema``, a schema on the field::

    CONVERTER = make_converter()  # the core's hooks; nobody else's
    CONVERTER.register_structure_hook(Topic, parse_topic)  # raises ValueError("must ...")

    topic: Topic = setting(description="...", schema={"type": "string"})
    ...
    return structure(NtfyConfig, options, converter=CONVERTER)

HTTP channels add :mod:`dbnotify.http`; tests use :mod:`dbnotify.testing`. Nothing else
of dbnotify is meant for plugins: the rest may move between releases, this module does
not. docs/plugins.md is the reference, docs/plugin-tutorial.md the walk-through.
"""

from dbnotify.config.fields import (
    Duration,
    describe_value,
    did_you_mean,
    in_range,
    non_empty,
    not_below,
    positive,
    regular_file_problem,
    setting,
)
from dbnotify.config.structure import make_converter, structure
from dbnotify.errors import ConfigError, ConfigIssue, InvalidField
from dbnotify.events import Field, Notification, Severity
from dbnotify.hookspecs import ChannelInfo, hookimpl
from dbnotify.rendering import Renderer, one_line
from dbnotify.results import FailureKind, RecipientResult, Status, TestReport, TestStage
from dbnotify.secrets import MASK, Masker, Secret, base64_forms, basic_forms, credential_key
from dbnotify.secrets import forms as secret_forms

__all__ = [
    "MASK",
    "ChannelInfo",
    "ConfigError",
    "ConfigIssue",
    "Duration",
    "FailureKind",
    "Field",
    "InvalidField",
    "Masker",
    "Notification",
    "RecipientResult",
    "Renderer",
    "Secret",
    "Severity",
    "Status",
    "TestReport",
    "TestStage",
    "base64_forms",
    "basic_forms",
    "credential_key",
    "describe_value",
    "did_you_mean",
    "hookimpl",
    "in_range",
    "make_converter",
    "non_empty",
    "not_below",
    "one_line",
    "positive",
    "regular_file_problem",
    "secret_forms",
    "setting",
    "structure",
]
