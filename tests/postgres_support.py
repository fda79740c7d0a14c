"""A throwaway PostgreSQL server for the tests: initdb and pg_ctl in a temporary folder.

The server listens on 127.0.0.1 on a free port, trusts local connections, and is removed with
its folder when the session ends. PostgreSQL refuses to run as root, so when the tests run as
root (CI containers, this machine) the server runs as the ``postgres`` account Debian's package
creates (or ``nobody``), through ``runuser``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

_DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
_SERVER_ACCOUNTS = ("postgres", "nobody")
_SUPERUSER = "counterfake"


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else the newest Debian version's folder."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    candidates = sorted(
        Path("/").glob(_DEBIAN_BINDIRS.lstrip("/")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    found = [path for path in candidates if (path / "initdb").exists()]
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_account() -> pwd.struct_passwd | None:
    """None when we are not root (the server runs as us); else the account to run it as."""
    if os.geteuid() != 0:
        return None
    for name in _SERVER_ACCOUNTS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' account to run PostgreSQL")


class PostgresServer:
    """One server for the test session; ``new_database()`` gives each test an empty database."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.account = _server_account()
        # Under /tmp when the server runs as another account: $TMPDIR may be a folder of ours
        # that it cannot enter.
        parent = None if self.account is None else "/tmp"
        self.root = Path(tempfile.mkdtemp(prefix="counterfake-pg-", dir=parent))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/postgres"
        self._names = itertools.count(1)

    def _run(self, *command: str) -> None:
        prefix = [] if self.account is None else ["runuser", "-u", self.account.pw_name, "--"]
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}): "
                f"{result.stderr.strip()} {log[-2000:]}"
            )

    def start(self) -> None:
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def new_database(self) -> str:
        """The URL of a new, empty database on this server."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
