"""A PostgreSQL server for the tests, from the binaries PyPI's ``pgserver`` bundles (PostgreSQL 16
with pgvector), on 127.0.0.1 and a free port, with its data in a temporary folder.

It can be stopped the hard way (``immediate``: as a crash or a power cut leaves it) and started
again on the same port, for the outage tests. As root, the server runs as the ``pgserver`` user
(PostgreSQL refuses root), as pgserver itself does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackPostgres:
    def __init__(self, data: Path):
        from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.data = Path(data)
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            import stat

            from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(self.bin.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        self.data.mkdir(parents=True)
        if self.user is not None:
            ensure_prefix_permissions(self.data)
            shutil.chown(self.data, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--encoding=utf8", "-U", "postgres")
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, exe: str, *args: str, timeout: float = 60) -> str:
        result = subprocess.run([str(self.bin / exe), *args], capture_output=True, text=True, timeout=timeout,
                                user=self.user)
        if result.returncode != 0:
            raise RuntimeError(f"{exe} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data / "log"), "-o",
                  f"-h 127.0.0.1 -p {self.port} -k {self.data}", "start")

    def ensure_running(self) -> None:
        """Start it again if a test stopped it and failed before starting it."""
        status = subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True,
                                timeout=60, user=self.user)
        if status.returncode == 3:  # no server running
            self.start()

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def create_database(self, name: str) -> str:
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-qc",
                  f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
