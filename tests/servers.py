"""Real servers for end-to-end tests, on 127.0.0.1 only: a free port, an `mlflow server`, a
throw-away PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, seconds: float = 60.0, server: subprocess.Popen | None = None) -> None:
    """Until ``url`` answers; an error at once if the ``server`` process exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, env: dict | None = None,
                  extra_args: tuple[str, ...] = (), log: Path | None = None) -> Iterator[str]:
    """An `mlflow server` on a free loopback port for the duration of the block; yields its URL.
    Its output goes to ``log`` if given."""
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the server
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
         "--workers", "1", *extra_args],
        env=env, stdout=out, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{uri}/health", 120, server)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if log:
            out.close()


def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str
    host: str = "127.0.0.1"

    def uri(self, database: str, password: str | None = None, port: int | None = None) -> str:
        return (f"postgresql://{self.user}:{self.password if password is None else password}@"
                f"{self.host}:{port or self.port}/{database}")

    def create_database(self, name: str) -> None:
        import psycopg
        with psycopg.connect(host=self.host, port=self.port, user=self.user,
                             password=self.password, dbname="postgres", autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')


def unprivileged_user() -> list[str]:
    """The command prefix that runs PostgreSQL's programs as a non-root user: it refuses to run as
    root. Debian's `postgres` account if there is one, else `nobody`."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists")


@contextlib.contextmanager
def postgres_cluster(password: str, user: str = "tunelab") -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster (`initdb` + `pg_ctl`) in a temporary directory, listening on
    127.0.0.1 only at a free port, password (scram-sha-256) authentication, no durability (fsync
    off: a test's data need not survive a crash); removed afterwards."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL's server programs are missing (apt-get install postgresql)")
    as_user = unprivileged_user()
    folder = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))  # under /tmp: the user can reach it
    owner = pwd.getpwnam(as_user[2]) if as_user else None
    if owner:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    (folder / "pw").write_text(password)
    if owner:
        os.chown(folder / "pw", owner.pw_uid, owner.pw_gid)
    data, port = folder / "data", free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True)

    pg(str(bindir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={folder / 'pw'}",
       "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
    (folder / "pw").unlink()
    options = (f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
               f"-c full_page_writes=off -c max_connections=100")
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
       "start")
    try:
        yield Postgres(port, user, password)
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
