"""The hooks a channel plugin implements.

One plugin (an entry point in the group ``dbnotify.channels``) provides one channel
type; the entry point's name is the type (``email = "dbnotify_email.plugin"``).

pluggy calls hooks synchronously and knows nothing of coroutines, so dbnotify never
broadcasts a hook to every plugin: it calls each hook only on the plugin that owns the
channel type, and awaits what ``send`` and ``test`` return. Write those two as
``async def``. Hook wrappers are not supported. A hook implementation may take any
subset of a spec's arguments, by name, as pluggy allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

if TYPE_CHECKING:
    from dbnotify.events import Notification
    from dbnotify.rendering import Renderer
    from dbnotify.results import RecipientResult, TestReport

PROJECT = "dbnotify"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@attrs.frozen
class ChannelInfo:
    """What the core needs to know about a channel type before using it."""

    description: str
    config_class: type
    """The attrs class that :func:`validate_config` returns."""
    user_delivery: bool = False
    """True when ``send`` can deliver to an arbitrary person's address (email can)."""
    extra_options: dict[str, Any] = attrs.field(factory=dict)
    """JSON Schema of keys that ``validate_config`` handles before the config class
    (such as the email channel's ``preset``), for ``dbnotify schema``."""
    supplied: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """Required keys of the config class that ``validate_config`` fills in from other
    keys: key -> JSON Schema of the blocks that supply it (email's ``host``, from most
    presets). ``dbnotify schema`` requires the key only in the other blocks."""
    schema_rules: tuple[dict[str, Any], ...] = ()
    """JSON Schemas the whole block must also match (``allOf``): the checks across keys
    that the config class makes in ``__attrs_post_init__``, so that a form built from
    ``dbnotify schema`` refuses what ``validate`` refuses."""


@hookspec
def channel_info() -> ChannelInfo:
    """Describe the channel type; called once when the plugin is loaded.

    The core uses it to list the channel (``dbnotify plugins``) and to choose a channel
    for per-user copies (``user_delivery``).
    """


@hookspec
def validate_config(options: Mapping[str, Any]) -> Any:
    """Turn the channel's block of the configuration into a validated config object.

    ``options`` is the block without its ``type`` key. Raise
    :class:`dbnotify.channel.ConfigError` listing every problem with a path relative to
    the block (``port``, ``to[1]``); the core prefixes ``channels.<name>.``. Use
    :func:`dbnotify.channel.structure` to get unknown-key, type and validator errors for
    free. Secrets belong in :class:`dbnotify.channel.Secret` fields.
    """


@hookspec
def send(
    config: Any,
    notification: Notification,
    renderer: Renderer,
    recipients: tuple[str, ...] | None,
    retry_only: tuple[str, ...] | None,
) -> Awaitable[Sequence[RecipientResult]]:
    """Deliver one notification; return one result per recipient. Write it ``async``.

    ``recipients`` is ``None`` for the channel's configured recipients, or the affected
    user's address alone for a per-user copy (then nobody else may appear in any header).
    ``retry_only``, when set, names the recipients (as earlier results named them) that
    still need this notification: deliver to those alone, with the message unchanged
    (same headers, same Message-ID). Plugins with a single endpoint may ignore it.
    Render every text through ``renderer``. Never raise for a delivery failure: return a
    failed :class:`~dbnotify.channel.RecipientResult` with its kind (transient or
    permanent), the server's reply and a hint; set ``parks_channel`` when the failure is
    the channel's own (bad credentials), so that its queue waits for a fix instead of
    hammering the server. The core applies a deadline.
    """


@hookspec
def test(
    config: Any,
    notification: Notification,
    renderer: Renderer,
    send_message: bool,
) -> Awaitable[TestReport]:
    """Check the channel stage by stage and, if ``send_message``, deliver ``notification``.

    Return a :class:`~dbnotify.channel.TestReport` whose stages name what was checked
    (connect, TLS, AUTH ...), how long each took and, on failure, the reply and a hint.
    """


@hookspec
def shutdown() -> Awaitable[None]:
    """Optional: release what the plugin keeps open on the running event loop.

    Called by :meth:`dbnotify.Notifier.aclose` (and after every ``notify_sync``), e.g. to
    close connections kept for reuse. Write it ``async``.
    """


@hookspec
def preview(config: Any, notification: Notification, renderer: Renderer) -> str:
    """Optional: ``notification`` exactly as ``send`` would put it on the wire, as text.

    For ``dbnotify render --format eml`` (the email channel returns the whole RFC 5322
    message) and for people checking a channel's output without sending. Sends nothing.
    """


HOOK_NAMES: tuple[str, ...] = ("channel_info", "validate_config", "send", "test")
"""The hooks every channel plugin must implement."""
OPTIONAL_HOOKS: tuple[str, ...] = ("shutdown", "preview")
