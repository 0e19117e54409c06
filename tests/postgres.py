"""A real, throwaway PostgreSQL server for the warehouse and scoring tests (one per test session).

It is started from this machine's PostgreSQL binaries (``initdb``, ``pg_ctl``); tests that need it
are skipped when there are none. It listens on 127.0.0.1 on a free port, trusts the user
``llmrec``, logs every statement (the COPY test reads that log) and is killed at the end of the
session. Each test gets its own database from ``postgres_db_url``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    port: int
    log: Path

    def url(self, dbname: str) -> str:
        return f"postgresql://llmrec@127.0.0.1:{self.port}/{dbname}"


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # /usr/lib/postgresql/<major>/bin: the newest major version.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: Path(p).parts[-3].zfill(4))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user() -> str:
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


@pytest.fixture(scope="session")
def postgres_server():
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="llmrec-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        user = _unprivileged_user()
        shutil.chown(root, user)
        as_user = ["runuser", "-u", user, "--"]
    data, log, port = root / "data", root / "server.log", _free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 60}
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "llmrec", "--no-sync",
                        "-E", "UTF8", "--locale=C"], **run)
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c log_statement=all -c log_line_prefix=db=%d:"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o", options, "start"],
                       **run)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {err.stderr or err.stdout}")
    server = PostgresServer(port, log)
    try:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE llmrec")
        yield server
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """``postgresql://llmrec@127.0.0.1:<port>/llmrec`` of the session's server."""
    return postgres_server.url("llmrec")


@pytest.fixture
def postgres_db_url(postgres_server) -> str:
    """A fresh, empty database of the session's server, so tests never see each other's tables."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return postgres_server.url(name)
