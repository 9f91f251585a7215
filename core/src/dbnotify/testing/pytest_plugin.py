"""dbnotify's pytest plugin: the ``--channel-type`` option of the generic contract checks.

Registered through the ``pytest11`` entry point of the ``dbnotify`` distribution, so it is
active wherever dbnotify is installed; it adds one option and nothing else (no fixtures,
no hooks that change other tests)::

    pytest --pyargs dbnotify.testing.generic --channel-type ntfy

Without ``--channel-type`` the generic checks run for every channel type installed in the
entry-point group ``dbnotify.channels``.
"""

from __future__ import annotations

import pytest

# Detailed assertion messages in the contract modules, which authors import from
# site-packages (pytest rewrites only test modules and conftests on its own).
pytest.register_assert_rewrite("dbnotify.testing.contract", "dbnotify.testing.generic")

OPTION = "channel_type"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbnotify", "dbnotify plugin contract")
    group.addoption(
        "--channel-type",
        action="append",
        dest=OPTION,
        default=[],
        metavar="TYPE",
        help="channel type (entry-point name in dbnotify.channels) for the generic checks "
        "of dbnotify.testing.generic; repeatable; default: every installed channel type",
    )


def channel_types(config: pytest.Config) -> list[str]:
    """The channel types given with ``--channel-type`` (empty when none was given)."""
    value = config.getoption(OPTION, default=[])
    return [str(v) for v in value or ()]
