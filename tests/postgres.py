"""A throwaway PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a temp folder.

`start_postgres()` runs initdb (trust auth, superuser `postgres`) in a new temp folder, starts the
server on a free port of 127.0.0.1 (its unix socket inside the folder, nothing in /var/run) and
waits until it accepts connections; `PostgresServer.stop()` stops it (`pg_ctl stop -m fast`) and
deletes the folder. The Debian system cluster is never touched. PostgreSQL refuses to run as
root, so as root every command runs as the `postgres` user, who is given the folder.

scripts/test.sh installs Debian's `postgresql` package when no initdb is found.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from appserver import free_port
from psycopg import sql

NOT_INSTALLED = "PostgreSQL is not installed; scripts/test.sh installs Debian's postgresql"
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
READY_SECONDS = 30.0


def find_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres (the newest Debian version first), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    """A running throwaway cluster: `url` is the SQLAlchemy URL of its `postgres` database."""

    url: str
    port: int
    folder: Path
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder."""
        return self.folder / "data"

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of another database of this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; its SQLAlchemy URL."""
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def conninfo(self, database: str = "postgres") -> str:
        """A libpq connection string (for psycopg itself)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} connect_timeout=5"

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and delete its folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                _run(
                    [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30"],
                    check=False,
                )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(folder: Path | None = None) -> PostgresServer:
    """initdb and start a cluster in `folder` (default: a new temp folder), ready for connections.

    Raises RuntimeError (with the server's log) when it does not come up; FileNotFoundError when
    PostgreSQL is not installed.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError(NOT_INSTALLED)
    folder = Path(folder or tempfile.mkdtemp(prefix="assistant-pg-"))
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)
    os.chmod(folder, 0o700)
    data = folder / "data"
    log = folder / "server.log"
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
            started = _run(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(READY_SECONDS)),
                ],
                check=False,
            )
            if started.returncode == 0:
                server = PostgresServer(
                    f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres", port, folder, bin_dir
                )
                _wait_until_ready(server)
                return server
        raise RuntimeError(f"PostgreSQL did not start:\n{_tail(log)}")
    except BaseException:
        PostgresServer("", 0, folder, bin_dir).stop()
        raise


def _wait_until_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            with psycopg.connect(server.conninfo()) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL does not accept connections: {exc}\n{_tail(server.folder / 'server.log')}"
                ) from exc
            time.sleep(0.2)


def _run(command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as the `postgres` user when we are root."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", SYSTEM_USER, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd="/")
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no server log)"
