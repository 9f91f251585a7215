"""Test, lint and type-check sessions. ``uv run nox`` runs the default set (what CI runs).

Each workspace member is tested in its own environment, installed from its built wheel
(not editable), so a member that imports what it never declared, or a template missing
from a wheel, fails here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "contract", "docs", "lint", "types", "postfix", "browser", "serve"]

# Every session's interpreter: 3.11 is the one the machines (CI's and ours) have, though
# requires-python is >=3.11. Make a session a matrix (python=["3.11", "3.12"]) only once
# the machines have more; error_on_missing_interpreters would fail it otherwise.
PYTHON = "3.11"

PYPROJECT = nox.project.load_toml("pyproject.toml")
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "test")
LINT_DEPS = nox.project.dependency_groups(PYPROJECT, "lint")
BENCH_DEPS = nox.project.dependency_groups(PYPROJECT, "bench")
SERVE_TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "serve-test")
NOX_DEPS = [d for d in nox.project.dependency_groups(PYPROJECT, "dev") if d.startswith("nox")]

PLUGINS = sorted(p.parent for p in Path("plugins").glob("*/pyproject.toml"))
"""Every channel plugin of the workspace: each gets its own tests session."""


def _name(folder: Path) -> str:
    return str(nox.project.load_toml(str(folder / "pyproject.toml"))["project"]["name"])


# member -> (test folder, what to install besides the test tools)
MEMBERS: dict[str, tuple[str, list[str]]] = {
    # the core alone: its tests that need a channel plugin live in tests/core
    "dbnotify": ("core/tests", ["./core[testing,http,postgresql]"]),
    **{
        _name(folder): (f"{folder}/tests", ["./core[testing,http]", f"./{folder}"])
        for folder in PLUGINS
    },
    "integration": (
        "tests",
        ["./core[demo,http,postgresql]", *(f"./{folder}" for folder in PLUGINS)],
    ),
}


@nox.session(python=PYTHON)
@nox.parametrize("member", list(MEMBERS), ids=list(MEMBERS))
def tests(session: nox.Session, member: str) -> None:
    """Run one member's tests (``nox -s "tests(dbnotify-email)"``)."""
    folder, install = MEMBERS[member]
    session.install(*install, *TEST_DEPS)
    session.run("pytest", folder, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and formatting), and the import layers (import-linter, pyproject.toml)."""
    session.install(*LINT_DEPS, "./core", *(f"./{folder}" for folder in PLUGINS))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def types(session: nox.Session) -> None:
    """mypy --strict on what ``[tool.mypy] files`` lists: every member's sources, bench, tools."""
    session.install(
        *LINT_DEPS,
        *TEST_DEPS,
        "./core[testing,http,postgresql,serve]",
        *(f"./{folder}" for folder in PLUGINS),
        *SERVE_TEST_DEPS,
    )
    session.run("mypy")


def _require_program(session: nox.Session, program: str, package: str) -> None:
    """Skip when a Debian program is missing, but fail under CI: CI never skips silently."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    if shutil.which(program, path=search) is None:
        message = f"{program} not installed: apt-get install {package}"
        if os.environ.get("CI"):
            session.error(f"{message} (CI is set: this session must run, not skip)")
        session.skip(message)


@nox.session(python=PYTHON)
def postfix(session: nox.Session) -> None:
    """Email through a real Postfix on 127.0.0.1: STARTTLS, delivered to a Maildir."""
    _require_program(session, "postfix", "postfix")
    session.install("./core[testing]", "./plugins/email", *TEST_DEPS)
    session.run("pytest", "tests/postfix", *session.posargs)


@nox.session(python=PYTHON)
def browser(session: nox.Session) -> None:
    """The default HTML email in headless Chromium, one screenshot per severity, and a
    grouped Discord message drawn as its client would (Pillow)."""
    _require_program(session, "chromium", "chromium")
    session.install("./core", "./plugins/discord", *TEST_DEPS, "pillow")
    session.run("pytest", "tests/browser", *session.posargs)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """``dbnotify serve`` as users run it: the API over HTTP (httpx, schemathesis), the
    console in headless Chromium (Playwright), the Node example (the machine's node)."""
    _require_program(session, "chromium", "chromium")
    _require_program(session, "node", "nodejs")
    session.install(
        "./core[testing,http,serve]",
        *(f"./{folder}" for folder in PLUGINS),
        *TEST_DEPS,
        *SERVE_TEST_DEPS,
    )
    session.run("pytest", "tests/serve", *session.posargs)


# --- the plugin contract suite --------------------------------------------------------

EXAMPLE = Path("docs/examples/dbnotify-example")
"""The plugin tutorial's example plugin: ``docs`` runs the contract suite on it."""
USAGE = "usage: nox -s contract_external -- PATH|REQUIREMENT [pytest arguments]"


def _contract_modules(tests: Path) -> list[Path]:
    """The test modules in ``tests`` with a class derived from ``ChannelContract``."""
    import ast

    found = []
    for module in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and base.id == "ChannelContract")
                or (isinstance(base, ast.Attribute) and base.attr == "ChannelContract")
                for base in node.bases
            ):
                found.append(module)
                break
    return found


def _wheel(session: nox.Session, folder: Path) -> Path:
    """Build ``folder``'s wheel (``uv build``) into a fresh folder of the session's."""
    out = Path(session.create_tmp()).resolve() / "wheels" / folder.resolve().name
    shutil.rmtree(out, ignore_errors=True)
    session.run(
        "uv", "build", "--quiet", "--wheel", "--out-dir", str(out), str(folder), external=True
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def _install_with_core(session: nox.Session, requirement: str, name: str) -> None:
    """Install ``requirement`` with the workspace's own core (built wheel, testing extra)."""
    core = _wheel(session, Path("core"))
    session.install(
        f"dbnotify[testing] @ {core.as_uri()}",
        requirement,
        *TEST_DEPS,
        "--reinstall-package=dbnotify",
        f"--reinstall-package={name}",
        "--no-sources",  # the plugin's own [tool.uv.sources] must not replace this core
    )


def _channel_types(session: nox.Session, distribution: str) -> list[str]:
    """The channel types the installed ``distribution`` registers (dbnotify.channels)."""
    script = (
        "import sys\n"
        "from importlib.metadata import distribution\n"
        "eps = distribution(sys.argv[1]).entry_points\n"
        "print(' '.join(sorted(ep.name for ep in eps if ep.group == 'dbnotify.channels')))"
    )
    types = str(session.run("python", "-c", script, distribution, silent=True) or "").split()
    if not types:
        session.error(f"{distribution} registers no entry point in the group dbnotify.channels")
    return types


def _run_contract(
    session: nox.Session,
    types: list[str],
    tests: Path | None,
    pytest_args: list[str],
    *,
    every_test: bool = False,
) -> None:
    """The generic checks for each channel type, then the plugin's contract modules (or,
    with ``every_test``, its whole tests folder, which must hold such a module)."""
    session.run(
        "pytest",
        "--pyargs",
        "dbnotify.testing.generic",
        *(f"--channel-type={t}" for t in types),
        *pytest_args,
    )
    if tests is None:
        return
    modules = _contract_modules(tests)
    if not modules:
        session.error(
            f"{tests} has no test module with a class derived from "
            "dbnotify.testing.contract.ChannelContract (see docs/plugin-tutorial.md)"
        )
    session.run("pytest", *(map(str, [tests] if every_test else modules)), *pytest_args)


def _contract_on(
    session: nox.Session, target: str, pytest_args: list[str], *, every_test: bool = False
) -> None:
    """Install a plugin (a folder, or a requirement) and run the contract suite on it."""
    from packaging.requirements import Requirement

    folder = Path(target)
    tests: Path | None = None
    if folder.is_dir():
        if not (folder / "pyproject.toml").is_file():
            session.error(f"{folder} has no pyproject.toml; {USAGE}")
        project = nox.project.load_toml(str(folder / "pyproject.toml"))["project"]
        name = str(project["name"])
        extras = [e for e in ("test", "tests") if e in project.get("optional-dependencies", {})]
        wheel = _wheel(session, folder)
        requirement = f"{name}{'[' + ','.join(extras) + ']' if extras else ''} @ {wheel.as_uri()}"
        tests = folder / "tests" if (folder / "tests").is_dir() else None
    else:
        name = Requirement(target).name
        requirement = target
    _install_with_core(session, requirement, name)
    types = _channel_types(session, name)
    _run_contract(session, types, tests, pytest_args, every_test=every_test)


@nox.session(python=PYTHON)
@nox.parametrize("plugin", [str(f) for f in PLUGINS], ids=[f.name for f in PLUGINS])
def contract(session: nox.Session, plugin: str) -> None:
    """The plugin contract suite on one member of plugins/, installed from its wheel.

    The generic checks (``pytest --pyargs dbnotify.testing.generic``) for each channel type
    it registers, then its test modules that subclass ChannelContract
    (``nox -s "contract(email)"``; extra arguments go to pytest).
    """
    folder = Path(plugin)
    name = _name(folder)
    _install_with_core(session, f"{name} @ {_wheel(session, folder).as_uri()}", name)
    _run_contract(session, _channel_types(session, name), folder / "tests", session.posargs)


@nox.session(python=PYTHON)
def contract_external(session: nox.Session) -> None:
    """The plugin contract suite on a plugin that lives elsewhere.

    ``nox -s contract_external -- PATH|REQUIREMENT [pytest arguments]``: a folder with a
    pyproject.toml (built as a wheel; its ``test`` extra installed if it has one; its
    ``tests/`` modules that subclass ChannelContract run too), or a requirement such as
    ``dbnotify-foo==1.2``. The workspace's own core is installed with it.
    """
    if not session.posargs:
        session.error(USAGE)
    target, *pytest_args = session.posargs
    _contract_on(session, target, pytest_args)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The docs cannot rot: they tell the truth, and the tutorial's example plugin passes.

    ``tools/check_docs.py``: every relative Markdown link under docs/ (file and heading
    anchor) resolves; every code block marked ``<!-- example: FILE -->`` is verbatim in
    the example plugin (docs/examples/dbnotify-example); docs/development.md's layout and
    table of sessions match the tree and this file. Then that plugin passes the contract
    suite, as ``contract_external`` runs it, and all its tests; its source passes mypy
    --strict.
    """
    session.install(*NOX_DEPS)  # the checker lists the sessions with ``nox -l --json``
    session.run("python", "tools/check_docs.py")
    _contract_on(session, str(EXAMPLE), session.posargs, every_test=True)
    session.install(*LINT_DEPS)
    session.run("mypy", "--strict", str(EXAMPLE / "src"))


# --- the benchmark ----------------------------------------------------------------------


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmark (docs/performance.md); not a default session.

    ``nox -s bench`` runs every scenario; arguments go to ``bench/run.py``
    (``nox -s bench -- --quick --only 1,3 --json figures.json``). The workspace is installed
    from its wheels, as a host would have it, with psycopg and the ``bench`` group
    (procrastinate, a reference row) for scenario 1's PostgreSQL rows.
    """
    session.install(
        "./core[http,postgresql]",
        *(f"./{folder}" for folder in PLUGINS),
        *(d for d in TEST_DEPS if d.startswith("aiosmtpd")),
        *BENCH_DEPS,
    )
    session.run("python", "bench/run.py", *session.posargs)
