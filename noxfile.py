"""Test, lint and type-check sessions. ``uv run nox`` runs the default set (what CI runs).

Each workspace member is tested in its own environment, installed from its built wheel
(not editable), so a member that imports what it never declared, or a template missing
from a wheel, fails here.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "lint", "types", "postfix", "browser"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "test")
LINT_DEPS = nox.project.dependency_groups(PYPROJECT, "lint")

# member -> (test folder, what to install besides the test tools)
MEMBERS: dict[str, tuple[str, list[str]]] = {
    "dbnotify": ("core/tests", ["./core[testing]", "./plugins/email"]),
    "dbnotify-email": ("plugins/email/tests", ["./core[testing]", "./plugins/email"]),
    "integration": ("tests", ["./core[demo]", "./plugins/email"]),
}


@nox.session(python="3.11")
@nox.parametrize("member", list(MEMBERS), ids=list(MEMBERS))
def tests(session: nox.Session, member: str) -> None:
    """Run one member's tests (``nox -s "tests(dbnotify-email)"``)."""
    folder, install = MEMBERS[member]
    session.install(*install, *TEST_DEPS)
    session.run("pytest", folder, *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def types(session: nox.Session) -> None:
    """mypy --strict on every member's sources."""
    session.install(*LINT_DEPS, "./core[testing]", "./plugins/email")
    session.run("mypy")


def _require_program(session: nox.Session, program: str, package: str) -> None:
    """Skip when a Debian program is missing, but fail under CI: CI never skips silently."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    if shutil.which(program, path=search) is None:
        message = f"{program} not installed: apt-get install {package}"
        if os.environ.get("CI"):
            session.error(f"{message} (CI is set: this session must run, not skip)")
        session.skip(message)


@nox.session(python="3.11")
def postfix(session: nox.Session) -> None:
    """Email through a real Postfix on 127.0.0.1: STARTTLS, delivered to a Maildir."""
    _require_program(session, "postfix", "postfix")
    session.install("./core[testing]", "./plugins/email", *TEST_DEPS)
    session.run("pytest", "tests/postfix", *session.posargs)


@nox.session(python="3.11")
def browser(session: nox.Session) -> None:
    """The default HTML email in headless Chromium, one screenshot per severity (Pillow)."""
    _require_program(session, "chromium", "chromium")
    session.install("./core", *TEST_DEPS, "pillow")
    session.run("pytest", "tests/browser", *session.posargs)
