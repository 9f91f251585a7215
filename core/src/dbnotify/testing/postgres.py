"""A throwaway PostgreSQL server for tests: a real cluster of its own on 127.0.0.1.

The outbox's PostgreSQL backend relies on what only a real server does (transactions
across connections, locks, a server restarted in the middle of a burst), so its tests
run against PostgreSQL's own programs, never a fake::

    with start() as server:
        psycopg.connect(server.url, password=server.password)
        server.restart()

Each :func:`start` makes a fresh cluster in a new temporary directory: listening on
127.0.0.1 only, on a free port, its unix socket in its data directory, ``fsync`` on (the
outbox is about durability: a test of it must not run on settings that lose commits).
It holds a role and a database, both ``dbnotify``, the role with a random password.

Needs PostgreSQL's server programs (``apt-get install postgresql``; Debian keeps them in
``/usr/lib/postgresql/VERSION/bin``) and psycopg (``pip install 'dbnotify[postgresql]'``):
without them :func:`start` raises :class:`Unavailable`, which a test fixture turns into a
skip. PostgreSQL refuses to run as root, so under root the cluster belongs to, and runs
as, the ``postgres`` user the Debian package creates; otherwise, the current user.

No pytest here: the module works outside a test run too.
"""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, LiteralString, Self, TypeAlias
from urllib.parse import quote

import attrs

if TYPE_CHECKING:
    from psycopg import sql
    from psycopg.abc import Params

    Statement: TypeAlias = LiteralString | bytes | sql.SQL | sql.Composed
    """What ``Connection.execute`` takes with parameters (psycopg 3.2 and 3.3 alike)."""

__all__ = [
    "Binaries",
    "Server",
    "ServerError",
    "StopMode",
    "Unavailable",
    "find_binaries",
    "start",
]

DEBIAN_ROOT = Path("/usr/lib/postgresql")
"""Where Debian installs each major version's programs, as ``VERSION/bin``."""
PROGRAMS = ("initdb", "pg_ctl", "postgres")
INSTALL_SERVER = "apt-get install postgresql"
INSTALL_PSYCOPG = "pip install 'dbnotify[postgresql]'"
HOST = "127.0.0.1"
SUPERUSER = "postgres"
"""The cluster's superuser, and the OS user that runs it under root."""
START_ATTEMPTS = 3
"""Tries with a new free port when another process took the one picked meanwhile."""
LOG_TAIL = 30
"""Lines of the server's log quoted in a :class:`ServerError`."""

StopMode = Literal["smart", "fast", "immediate"]
"""``pg_ctl stop -m``: wait for clients; disconnect them; or quit at once (a crash:
the next start recovers from the WAL)."""

SETTINGS = """\
# dbnotify.testing.postgres: a throwaway cluster for tests
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 100
shared_buffers = 32MB
# durable, as in production: the outbox's tests must not pass on settings that lose commits
fsync = on
synchronous_commit = on
full_page_writes = on
"""


class Unavailable(Exception):
    """PostgreSQL or psycopg is not installed here; the message says what to install.

    A test fixture skips on it (or fails under CI): nothing is wrong with the code.
    """


class ServerError(Exception):
    """The server would not initialise, start or stop; the message quotes its log."""


@attrs.frozen
class Binaries:
    """One installation's server programs, all in ``bin_dir``."""

    bin_dir: Path

    def program(self, name: str) -> str:
        return str(self.bin_dir / name)


def _version(folder: Path) -> tuple[int, ...]:
    """``(15,)`` for ``.../15``, ``(9, 6)`` for ``.../9.6``; ``()`` for anything else."""
    try:
        return tuple(int(part) for part in folder.name.split("."))
    except ValueError:
        return ()


def find_binaries(path: str | None = None, debian_root: Path = DEBIAN_ROOT) -> Binaries:
    """The folder with initdb, pg_ctl and postgres: from ``PATH`` (``path`` if given),
    else the newest version under ``debian_root``, since Debian keeps them off ``PATH``.

    Raises :class:`Unavailable` when there is none.
    """
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl", path=os.environ.get("PATH", "") if path is None else path)
    if on_path is not None:  # a symlink to Debian's folder: pg_ctl finds postgres beside it
        candidates.append(Path(on_path).resolve().parent)
    versions = [folder for folder in debian_root.glob("*") if _version(folder)]
    candidates += [folder / "bin" for folder in sorted(versions, key=_version, reverse=True)]
    for bin_dir in candidates:
        if all(os.access(bin_dir / program, os.X_OK) for program in PROGRAMS):
            return Binaries(bin_dir)
    raise Unavailable(
        "PostgreSQL's server programs (initdb, pg_ctl, postgres) are neither on PATH nor "
        f"in {debian_root}/*/bin: {INSTALL_SERVER}"
    )


def _require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable(f"psycopg is not installed: {INSTALL_PSYCOPG}") from None


@attrs.frozen
class _Owner:
    """The OS user a cluster belongs to and runs as, when it cannot be the current one."""

    uid: int
    gid: int


def _owner() -> _Owner | None:
    """``postgres`` under root (PostgreSQL refuses root); None: the current user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise Unavailable(
            "PostgreSQL refuses to run as root, and there is no 'postgres' user to run it "
            f"as ({INSTALL_SERVER} creates it)"
        ) from None
    return _Owner(entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _password() -> str:
    return secrets.token_urlsafe(24)


def _environment() -> dict[str, str]:
    """This process's environment without libpq's variables (PGDATA, PGPORT, ...), which
    would otherwise point the programs at another cluster."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


@attrs.define(eq=False)
class Server:
    """A running throwaway cluster; :func:`start` makes one. ``close()`` (or leaving its
    ``with`` block) stops it and deletes its directory.

    ``url`` has no password: pass ``password=server.password`` to the client. The
    superuser ``postgres`` connects without one over the unix socket (``admin_url``,
    ``admin()``), so tests can look behind the application's back.
    """

    root: Path
    """The temporary directory that holds the cluster (``data_dir``) and its log."""
    binaries: Binaries = attrs.field(repr=False)
    host: str = HOST
    port: int = 0
    user: str = "dbnotify"
    dbname: str = "dbnotify"
    password: str = attrs.field(factory=_password, repr=False)
    data_dir: Path = attrs.field(
        default=attrs.Factory(lambda self: self.root / "data", takes_self=True)
    )
    superuser: str = SUPERUSER
    superuser_password: str = attrs.field(factory=_password, repr=False)
    """Only for checking the TCP listener: the superuser otherwise uses the socket."""
    owner: _Owner | None = attrs.field(default=None, repr=False)
    timeout: float = 60.0
    """Seconds each of initdb, start and stop may take."""

    @property
    def url(self) -> str:
        """``postgresql://dbnotify@127.0.0.1:PORT/dbnotify``: no password in it."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def admin_url(self) -> str:
        """The superuser's URL, over the unix socket in ``data_dir`` (no password)."""
        return (
            f"postgresql://{self.superuser}@/{self.dbname}"
            f"?host={quote(str(self.data_dir), safe='')}&port={self.port}"
        )

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def log(self, lines: int | None = None) -> str:
        """The server's log (its last ``lines``), for assertion messages."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return text if lines is None else "\n".join(text.splitlines()[-lines:])

    def admin(
        self, query: Statement, params: Params | None = None, *, dbname: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (autocommit) in ``dbname`` (default: the
        application's database); its rows, if it returns any."""
        import psycopg

        with psycopg.connect(
            host=str(self.data_dir),
            port=self.port,
            user=self.superuser,
            dbname=dbname or self.dbname,
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            cursor = connection.execute(query, params)
            return list(cursor.fetchall()) if cursor.description is not None else []

    # --- lifecycle --------------------------------------------------------------------

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A server program, run as the cluster's owner."""
        owner = self.owner
        return subprocess.run(  # noqa: S603 (the programs found by find_binaries)
            [self.binaries.program(args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=self.timeout + 30,
            check=False,
            cwd=self.root,  # the owner may not be allowed into ours
            env=_environment(),
            user=None if owner is None else owner.uid,
            group=None if owner is None else owner.gid,
            extra_groups=None if owner is None else [],
        )

    def _fail(self, what: str, done: subprocess.CompletedProcess[str] | None = None) -> ServerError:
        output = f"{done.stdout}{done.stderr}".strip() if done is not None else ""
        return ServerError(
            f"PostgreSQL {what} ({self.data_dir})"
            + (f":\n{output}" if output else "")
            + f"\n--- server log (last {LOG_TAIL} lines) ---\n{self.log(LOG_TAIL)}"
        )

    def is_running(self) -> bool:
        return self._ctl("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def start(self) -> None:
        """Start the cluster again, on the same port (no-op if it runs); return once it
        accepts connections on 127.0.0.1. After ``kill()``, it recovers from its WAL."""
        if self.is_running():
            return
        seconds = str(max(1, round(self.timeout)))
        deadline = time.monotonic() + self.timeout
        done = self._ctl(
            "pg_ctl", "start", "-w", "-t", seconds, "-D", str(self.data_dir),
            "-l", str(self.log_file),
        )  # fmt: skip
        if done.returncode != 0:
            raise self._fail(f"did not start on {self.host}:{self.port}", done)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        """Until the superuser gets in over TCP: pg_ctl's ``-w`` reads the pid file, this
        checks what clients use."""
        import psycopg

        while True:
            try:
                psycopg.connect(
                    host=self.host,
                    port=self.port,
                    user=self.superuser,
                    password=self.superuser_password,
                    dbname="postgres",
                    connect_timeout=5,
                ).close()
                return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise self._fail(
                        f"accepts no connection on {self.host}:{self.port} after "
                        f"{self.timeout:g}s: {error}"
                    ) from error
            time.sleep(0.05)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (no-op if stopped). ``fast`` disconnects clients and writes a
        checkpoint; ``immediate`` is a crash. Data and port stay for ``start()``."""
        if not self.is_running():
            return
        seconds = str(max(1, round(self.timeout)))
        done = self._ctl(
            "pg_ctl", "stop", "-w", "-t", seconds, "-m", mode, "-D", str(self.data_dir)
        )
        if done.returncode != 0:
            raise self._fail(f"did not stop ({mode})", done)

    def restart(self, mode: StopMode = "fast") -> None:
        """``stop(mode)`` then ``start()``: same data, same port."""
        self.stop(mode)
        self.start()

    def kill(self) -> None:
        """Stop at once, as in a crash (``immediate``): what is committed survives."""
        self.stop("immediate")

    def close(self) -> None:
        """Stop the server and delete its directory, data and log included."""
        atexit.unregister(self.close)
        try:
            if self.data_dir.is_dir():
                self.stop("immediate")  # its data is about to go: no checkpoint needed
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- creation ---------------------------------------------------------------------

    def _write(self, path: Path, text: str) -> None:
        """A file the cluster's owner can read, and no one else."""
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        if self.owner is not None:
            os.chown(path, self.owner.uid, self.owner.gid)

    def _initdb(self) -> None:
        if self.owner is not None:
            os.chown(self.root, self.owner.uid, self.owner.gid)
        password_file = self.root / "superuser-password"
        self._write(password_file, self.superuser_password + "\n")
        try:
            done = self._ctl(
                "initdb",
                "-D", str(self.data_dir),
                "-U", self.superuser,
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",  # the same on every machine, and needs no generated locale
            )  # fmt: skip
        finally:
            password_file.unlink()
        if done.returncode != 0:
            hint = ""
            if self.owner is not None and "ermission denied" in done.stdout + done.stderr:
                hint = (
                    f"\n(the '{SUPERUSER}' user must reach {self.root}: base_dir or TMPDIR "
                    "must be a folder every user may enter, such as /tmp, not pytest's tmp_path)"
                )
            raise ServerError(
                f"initdb failed in {self.data_dir}:\n{done.stdout}{done.stderr}{hint}"
            )
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\ninclude 'dbnotify.conf'\n")

    def _first_start(self) -> None:
        """Start on a free port, trying another if someone takes it before the server."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = _free_port()
            settings = SETTINGS.format(port=self.port, socket_dir=self.data_dir)
            self._write(self.data_dir / "dbnotify.conf", settings)
            logged = self.log()
            try:
                self.start()
                return
            except ServerError:
                taken = "Address already in use" in self.log()[len(logged) :]
                if not taken or attempt == START_ATTEMPTS:
                    raise

    def _create_database(self) -> None:
        from psycopg import sql

        role = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(self.user), sql.Literal(self.password)
        )
        self.admin(role, dbname="postgres")
        database = sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(self.dbname), sql.Identifier(self.user)
        )
        self.admin(database, dbname="postgres")


def start(*, base_dir: str | Path | None = None, timeout: float = 60.0) -> Server:
    """A fresh cluster, running, with the role and database ``dbnotify``.

    Its directory is new, under ``base_dir`` (default: the system's temporary folder).
    Under root, the ``postgres`` user must be able to enter it: not pytest's ``tmp_path``,
    which only root may. ``timeout`` bounds each of initdb, start and stop. Raises
    :class:`Unavailable` when PostgreSQL or psycopg is missing, :class:`ServerError` when
    the server fails. An unclosed server is closed when the interpreter exits.
    """
    binaries = find_binaries()
    _require_psycopg()
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="dbnotify-postgres-", dir=base_dir))
    server = Server(root, binaries, owner=owner, timeout=timeout)
    try:
        server._initdb()
        server._first_start()
        server._create_database()
    except BaseException:
        server.close()
        raise
    atexit.register(server.close)
    return server
