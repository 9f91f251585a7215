"""dbnotify.testing.postgres: a real, throwaway PostgreSQL on 127.0.0.1 (no mocks).

The session's server (the ``postgres`` fixture) is stopped and restarted here; every
test leaves it running. Needs Debian's postgresql package: skips without it, fails
under CI.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbnotify.testing import postgres as pg


@pytest.fixture
def server(postgres: pg.Server) -> Iterator[pg.Server]:
    """The session's server, running again after the test whatever it did."""
    yield postgres
    postgres.start()


def connect(
    server: pg.Server, password: str | None = None
) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        server.url, password=server.password if password is None else password, connect_timeout=10
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_starts_durable_on_loopback_only(server: pg.Server) -> None:
    assert server.is_running()
    assert server.url == f"postgresql://dbnotify@127.0.0.1:{server.port}/dbnotify"
    settings = dict(
        server.admin(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
            (
                [
                    "fsync",
                    "synchronous_commit",
                    "listen_addresses",
                    "port",
                    "unix_socket_directories",
                ],
            ),
        )
    )
    assert settings == {
        "fsync": "on",
        "synchronous_commit": "on",
        "listen_addresses": "127.0.0.1",
        "port": str(server.port),
        "unix_socket_directories": str(server.data_dir),
    }
    assert (server.data_dir / f".s.PGSQL.{server.port}").is_socket()


def test_password_login_over_tcp(server: pg.Server) -> None:
    with connect(server) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), host(inet_server_addr())"
        ).fetchone()
        assert row == ("dbnotify", "dbnotify", "127.0.0.1")
        conn.execute("CREATE TABLE owned (id int)")  # the role owns its database
        conn.execute("DROP TABLE owned")


def test_wrong_password_is_refused(server: pg.Server) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(server, password="not-" + server.password)


def test_repr_shows_no_password(server: pg.Server) -> None:
    shown = repr(server) + str(server) + server.url + server.admin_url
    assert server.password not in shown
    assert server.superuser_password not in shown
    assert str(server.port) in repr(server)


def test_restart_keeps_data_and_port(server: pg.Server) -> None:
    port = server.port
    with connect(server) as conn:
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('before restart')")
    try:
        server.restart()
        assert server.port == port
        with connect(server) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("before restart",)]
    finally:
        server.admin("DROP TABLE IF EXISTS kept")


def test_stop_then_start_on_the_same_port(server: pg.Server) -> None:
    port = server.port
    server.stop()
    assert not server.is_running()
    assert not listening(port)
    with pytest.raises(psycopg.OperationalError):
        connect(server)
    server.stop()  # already stopped: nothing to do
    server.start()
    assert server.port == port
    with connect(server) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_kill_keeps_what_was_committed(server: pg.Server) -> None:
    with connect(server) as conn:
        conn.execute("CREATE TABLE crashed (n int)")
        conn.execute("INSERT INTO crashed SELECT generate_series(1, 1000)")
    try:
        server.kill()
        assert not server.is_running()
        server.start()  # recovers from the WAL
        with connect(server) as conn:
            assert conn.execute("SELECT count(*) FROM crashed").fetchone() == (1000,)
    finally:
        server.admin("DROP TABLE IF EXISTS crashed")


def test_close_stops_and_removes_the_directory(postgres: pg.Server) -> None:
    with pg.start() as own:
        assert own.port != postgres.port
        root, port = own.root, own.port
        assert root.is_dir()
        assert listening(port)
    assert not root.exists()
    assert not listening(port)
    own.close()  # twice: nothing left to do


def test_missing_programs_say_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(pg.Unavailable, match=r"apt-get install postgresql"):
        pg.find_binaries(path="", debian_root=tmp_path)


def test_newest_debian_version_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "13", "notes"):
        folder = tmp_path / version / "bin"
        folder.mkdir(parents=True)
        for program in pg.PROGRAMS:
            (folder / program).touch(mode=0o755)
    assert pg.find_binaries(path="", debian_root=tmp_path).bin_dir == tmp_path / "15" / "bin"
