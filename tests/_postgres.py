"""A throwaway PostgreSQL server on loopback for the multi-machine sweep test.

``HIEROT_TEST_POSTGRES_URL`` names an existing database; otherwise :func:`throwaway_server`
starts one from the ``postgresql`` package's binaries (Debian: ``/usr/lib/postgresql/*/bin``):
``initdb`` into a temporary folder, ``pg_ctl start`` on a free loopback port with its socket in
that folder, trust authentication (loopback only: a throwaway). As root it runs as the ``postgres``
user (PostgreSQL refuses to run as root). Every step has a timeout, so a broken installation
skips or fails the test within seconds and never hangs it; the server is stopped (``-m
immediate``) and its folder removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

STEP_TIMEOUT_S = 60


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``initdb`` and ``pg_ctl``, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found or not Path(found[-1]).with_name("initdb").exists():
        return None
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a server; yield its URL (``postgresql://USER@127.0.0.1:PORT/postgres``)."""
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    root = Path(tempfile.mkdtemp(prefix="hierot-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run(_as_server_user([str(bin_dir / args[0]), *args[1:]]), check=True,
                       timeout=STEP_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)

    try:
        run("initdb", "-D", str(data), "-U", user, "-A", "trust", "--no-sync")
        run("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "30",
            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off", "start")
        try:
            yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
