"""Peer libraries, used only where installed: the ``eventsourcing`` SQLite recorder and DBOS on
SQLite. Each adapter drives the library through its public API at the same durability as our
store (WAL, ``synchronous=FULL``: SQLite's default, which neither library changes)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sqlite3
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["DbosPeer", "EventsourcingPeer", "PeerStatus", "peer_statuses"]


_SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@dataclass(frozen=True)
class PeerStatus:
    name: str
    available: bool
    version: str | None
    reason: str | None = None


def _status(dist: str, module: str) -> PeerStatus:
    try:
        ver = version(dist)
    except PackageNotFoundError:
        return PeerStatus(dist, False, None, f"not installed (pip install '{dist}', "
                                             "or the project's 'bench' extra)")
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken install is reported, not fatal
        return PeerStatus(dist, False, ver, f"import {module} failed: {exc!r}")
    return PeerStatus(dist, True, ver)


def peer_statuses() -> dict[str, PeerStatus]:
    return {
        "eventsourcing": _status("eventsourcing", "eventsourcing.sqlite"),
        "dbos": _status("dbos", "dbos"),
    }


class EventsourcingPeer:
    """``eventsourcing``'s ``SQLiteAggregateRecorder``: ``insert_events`` is one transaction.

    The library opens its connections in WAL mode and leaves ``synchronous`` at SQLite's default
    (FULL), so a recorded event is as durable as our store's ``full`` mode.
    """

    def __init__(self, path: Path) -> None:
        from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore

        self._datastore = SQLiteDatastore(str(path))
        self._recorder = SQLiteAggregateRecorder(self._datastore)
        self._recorder.create_table()
        self._version = 0
        self._originator = uuid.uuid4()

    def new_stream(self) -> None:
        self._originator = uuid.uuid4()
        self._version = 0

    def make_events(self, n: int, state: bytes) -> list[Any]:
        from eventsourcing.persistence import StoredEvent

        events = [StoredEvent(originator_id=self._originator,
                              originator_version=self._version + i + 1,
                              topic="benchmarks:BenchEvent", state=state) for i in range(n)]
        self._version += n
        return events

    def insert(self, events: list[Any]) -> None:
        self._recorder.insert_events(events)

    def pragmas(self) -> str:
        """The journal mode and ``synchronous`` level its connections actually run with."""
        with self._datastore.transaction(commit=False) as cur:
            cur.execute("PRAGMA journal_mode")
            journal = cur.fetchone()[0]
            cur.execute("PRAGMA synchronous")
            sync = cur.fetchone()[0]
        return f"journal_mode={journal}, synchronous={_SYNC_NAMES.get(sync, sync)}"

    def close(self) -> None:
        self._datastore.close()


_DBOS_WORKFLOWS: dict[str, Callable[..., Any]] = {}


def _dbos_workflows() -> dict[str, Callable[..., Any]]:
    """Register the benchmark workflows once per process (DBOS keeps a global registry)."""
    if _DBOS_WORKFLOWS:
        return _DBOS_WORKFLOWS
    from dbos import DBOS

    @DBOS.step()
    def bench_step(i: int) -> int:
        return i

    @DBOS.workflow()
    def bench_workflow(n: int) -> int:
        total = 0
        for i in range(n):
            total += bench_step(i)
        return total

    @DBOS.step()
    async def bench_step_async(i: int) -> int:
        return i

    @DBOS.workflow()
    async def bench_workflow_async(n: int) -> int:
        total = 0
        for i in range(n):
            total += await bench_step_async(i)
        return total

    _DBOS_WORKFLOWS.update(sync=bench_workflow, async_=bench_workflow_async)
    return _DBOS_WORKFLOWS


class DbosPeer:
    """DBOS with its system database on SQLite: every step's output is recorded durably.

    DBOS creates its SQLite file in rollback-journal mode; we switch the file to WAL first so that
    it writes at the same durability and with the same journal as our store (this makes DBOS
    faster, not slower, than its default). No network is used: no Conductor key, no OTLP export.
    """

    def __init__(self, path: Path | None, *, postgres_url: str | None = None) -> None:
        """On the SQLite file ``path``, or (``postgres_url``) on a PostgreSQL server, the
        system database DBOS recommends for production."""
        from dbos import DBOS

        if postgres_url is None:
            assert path is not None
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        self._workflows = _dbos_workflows()
        self._dbos = DBOS
        url = postgres_url or f"sqlite:///{path}"
        DBOS(config={"name": "mfm-bench", "system_database_url": url, "log_level": "WARNING"})
        DBOS.launch()
        logging.getLogger("dbos").setLevel(logging.WARNING)
        if postgres_url is not None:
            self.description = "PostgreSQL system database, the server's synchronous_commit=on"
            return
        with sqlite3.connect(path) as conn:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        self.description = (f"journal_mode={journal} (set before launch), synchronous left at "
                            "SQLite's default FULL (DBOS does not set it)")

    async def run_sequential(self, steps: int) -> None:
        """One synchronous workflow of ``steps`` steps (DBOS's faster mode), off the loop."""
        await asyncio.to_thread(self._workflows["sync"], steps)

    async def run_concurrent(self, workflows: int, steps: int) -> None:
        """``workflows`` async workflows of ``steps`` steps each, gathered on this loop."""
        wf: Callable[[int], Coroutine[Any, Any, int]] = self._workflows["async_"]
        await asyncio.gather(*(wf(steps) for _ in range(workflows)))

    def close(self) -> None:
        """Shut DBOS down. DBOS installed its own default executor on the running loop and
        shuts it down with itself, so the loop gets a fresh one for whatever runs next."""
        self._dbos.destroy(destroy_registry=False)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.set_default_executor(ThreadPoolExecutor())
