"""A throwaway PostgreSQL cluster on loopback for the tests and the state bench.

``initdb`` in a fresh temporary directory, then ``postgres`` itself as our child on a free
loopback port (no systemd, no fixed port, no pg_ctl daemon left behind), stopped by its pid
on the way out, whatever happened inside. PostgreSQL refuses to run as root: as root, the
cluster runs as the ``postgres`` user that Debian's package creates.

The superuser has a random password and TCP logins need it (scram-sha-256), so the tests
go through the same password path an operator does; ``password_file`` holds it.

    with run_postgres() as pg:
        url = pg.create_database("t1")  # postgresql://purger@127.0.0.1:PORT/t1
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg

from bench.cluster import Missing, _die_with_parent, free_port, install_hint

__all__ = ["PgCluster", "find_postgres", "missing_postgres", "run_postgres"]

_USER: Final = "purger"
#: As root, PostgreSQL runs as this user (Debian's postgresql package creates it).
_SERVICE_USER: Final = "postgres"
_START_TIMEOUT: Final = 60.0
_STOP_TIMEOUT: Final = 30.0
_live: set[subprocess.Popen[bytes]] = set()


@dataclass(frozen=True, slots=True)
class PgCluster:
    port: int
    password_file: Path
    log: Path

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, database: str = "postgres") -> str:
        """A URL without the password, as an operator writes it."""
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection (autocommit) for setting up and inspecting."""
        return psycopg.connect(self.url(database), password=self.password, autocommit=True)

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        with self.connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def find_postgres() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: on PATH, else Debian's newest."""
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).resolve().parent / "postgres").exists():
        return Path(on_path).resolve().parent
    versions = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    versions.sort(
        key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0
    )
    return versions[-1] if versions else None


def missing_postgres() -> str | None:
    """Why no cluster can start here (with the apt command that fixes it), or ``None``."""
    if find_postgres() is None:
        return install_hint([Missing("initdb/postgres", "postgresql")])
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SERVICE_USER)
        except KeyError:
            return f"running as root and no {_SERVICE_USER!r} user to run PostgreSQL as"
    return None


@contextlib.contextmanager
def run_postgres(*, fsync: bool = False) -> Iterator[PgCluster]:
    """A cluster for the ``with`` block. ``fsync=False`` (tests) skips disk flushes;
    the bench keeps them, as a real server does."""
    bin_dir = find_postgres()
    if bin_dir is None:
        raise RuntimeError(missing_postgres())
    user = _SERVICE_USER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="purger-pg-"))
    try:
        if user is not None:
            shutil.chown(root, user)
        password_file = root / "password"
        password_file.write_text(secrets.token_urlsafe(18) + "\n")
        if user is not None:
            shutil.chown(password_file, user)
        subprocess.run(
            [bin_dir / "initdb", "-D", root / "data", "-U", _USER, "--pwfile", password_file,
             "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
             "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True, user=user,
        )  # fmt: skip
        with _postgres(bin_dir, root, user, fsync) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _postgres(bin_dir: Path, root: Path, user: str | None, fsync: bool) -> Iterator[PgCluster]:
    """Start ``postgres`` on a free port (another on a clash), wait until it takes logins."""
    for _attempt in range(3):
        port = free_port()
        log = root / f"postgres-{port}.log"
        with log.open("wb") as out:
            if user is not None:
                shutil.chown(log, user)
            process = subprocess.Popen(
                [bin_dir / "postgres", "-D", root / "data", "-p", str(port), "-k", root,
                 "-c", "listen_addresses=127.0.0.1", "-c", f"fsync={'on' if fsync else 'off'}",
                 "-c", "max_connections=60"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, user=user,
                # SIGKILLed if we die uncleanly (set after the user change, so it holds);
                # its backends end when they see the postmaster gone.
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        _live.add(process)
        cluster = PgCluster(port=port, password_file=root / "password", log=log)
        try:
            if _wait_ready(process, cluster):
                yield cluster
                return
        finally:
            _stop(process)
    raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text(errors='replace')[-2000:]}")


def _wait_ready(process: subprocess.Popen[bytes], cluster: PgCluster) -> bool:
    """True once it takes a login; False if it exited (a port clash)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            cluster.connect().close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL did not take logins within {_START_TIMEOUT:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: sessions cut, checkpoint), SIGKILL if it hangs; by pid."""
    _live.discard(process)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@atexit.register
def _stop_all() -> None:
    for process in list(_live):
        _stop(process)
