"""A throwaway PostgreSQL server for tests and benchmarks.

``PgServer.start()`` runs ``initdb`` into a new temporary folder and starts ``postgres`` listening
on a unix socket in that folder and on a free loopback port; ``stop()`` stops it and removes the
folder. As root, every server program runs as the ``postgres`` system user (the server refuses
to run as root), and the folder is handed to that user.

``shared()`` gives one server per process (the test session), started on first use; it honours
``MFM_STORE_TEST_PG=<dsn>`` (use that server, start nothing). Without server binaries it raises
``PgUnavailable`` with the one reason the tests skip with.

Settings: ``fsync`` stays on (the durability and restart tests depend on it); only
``full_page_writes`` is off. That matters only for a torn page after an OS crash or power
loss, which no test makes, and saves WAL volume on a shared disk.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ENV_DSN = "MFM_STORE_TEST_PG"
ENV_BIN = "MFM_STORE_PG_BIN"
_CANDIDATE_BINS = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin",
                   "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/14/bin"]
SKIP_REASON = (f"PostgreSQL server binaries (initdb, pg_ctl) not found in {_CANDIDATE_BINS} "
               f"or ${ENV_BIN}, and ${ENV_DSN} is not set")


class PgUnavailable(RuntimeError):
    """No server can be started here (no binaries) and none was given."""


def find_bin() -> Path | None:
    candidates = [os.environ[ENV_BIN]] if os.environ.get(ENV_BIN) else _CANDIDATE_BINS
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgServer:
    """One running throwaway server (or a given one, when ``folder`` is None)."""

    def __init__(self, dsn: str, folder: Path | None, bin_dir: Path | None,
                 port: int | None) -> None:
        self.dsn = dsn
        self.folder = folder
        self.bin_dir = bin_dir
        self.port = port
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def owned(self) -> bool:
        """True when this process started the server (so it may restart or stop it)."""
        return self.folder is not None

    @property
    def data_dir(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    def dsn_for(self, user: str, password: str | None = None, *, tcp: bool = False) -> str:
        """A DSN to this server as ``user`` (over TCP with ``tcp``, else the socket)."""
        assert self.folder is not None and self.port is not None
        auth = user if password is None else f"{user}:{password}"
        if tcp:
            return f"postgresql://{auth}@127.0.0.1:{self.port}/postgres"
        return f"postgresql://{auth}@/postgres?host={self.folder}&port={self.port}"

    @classmethod
    def start(cls) -> PgServer:
        bin_dir = find_bin()
        if bin_dir is None:
            raise PgUnavailable(SKIP_REASON)
        folder = Path(tempfile.mkdtemp(prefix="mfm-pg-"))
        port = _free_port()
        server = cls(f"postgresql://postgres@/postgres?host={folder}&port={port}",
                     folder, bin_dir, port)
        try:
            if os.geteuid() == 0:
                shutil.chown(folder, "postgres", "postgres")
            server._run("initdb", "-D", str(server.data_dir), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
            conf = server.data_dir / "postgresql.conf"
            settings = (f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
                        f"unix_socket_directories = '{folder}'\n"
                        "max_connections = 300\nfull_page_writes = off\n"
                        "shared_buffers = 64MB\nlog_min_messages = fatal\n")
            server._append(conf, settings)
            server.pg_ctl_start()
            server._watch()
        except BaseException:
            server.stop()
            raise
        return server

    def _watch(self) -> None:
        """A watchdog in its own session that stops the server and removes its folder when
        this process dies without calling ``stop()`` (its end of a pipe closes then), so a
        killed test run leaves no server behind."""
        assert self.folder is not None and self.bin_dir is not None
        stop = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                "-w", "stop"]
        if os.geteuid() == 0:
            stop = ["runuser", "-u", "postgres", "--", *stop]
        code = ("import shutil, subprocess, sys\n"
                "sys.stdin.read()\n"
                f"subprocess.run({stop!r}, capture_output=True)\n"
                f"shutil.rmtree({str(self.folder)!r}, ignore_errors=True)\n")
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

    def _append(self, path: Path, text: str) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(text)

    def _run(self, program: str, *args: str) -> None:
        assert self.bin_dir is not None
        cmd = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              cwd=self.folder, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): "
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def pg_ctl_start(self) -> None:
        assert self.folder is not None
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.folder / "server.log"),
                  "-w", "-t", "60", "start")

    def restart_immediate(self) -> None:
        """``pg_ctl restart -m immediate``: a crash of the server and its recovery."""
        assert self.folder is not None
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.folder / "server.log"),
                  "-m", "immediate", "-w", "-t", "60", "restart")

    def stop(self) -> None:
        """Stop the server (if owned) and remove its folder. Idempotent."""
        if self.folder is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            watchdog = self._watchdog
            if watchdog is not None and watchdog.stdin is not None:
                watchdog.stdin.close()  # nothing left for it to do: it exits
                watchdog.wait()
            self._watchdog = None


_shared: PgServer | None = None
_shared_lock = threading.Lock()


def shared() -> PgServer:
    """The process's server: ``$MFM_STORE_TEST_PG`` if set, else one started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            given = os.environ.get(ENV_DSN)
            if given:
                _shared = PgServer(given, None, None, None)
            else:
                _shared = PgServer.start()
                atexit.register(_shared.stop)
        return _shared


def stop_shared() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
