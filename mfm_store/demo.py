"""The demo application (``mfm-store demo``): record a run live, kill it, resume it re-using
its facts, copy it, replay the copy.

The market and broker are a real HTTP server on 127.0.0.1 (:class:`DemoServer`, a free
port) that the demo starts first. The run's first part happens in a child process
(``mfm_store._demo_child``) that the demo kills with SIGKILL inside ``demo.order.submit``, right
after the broker's answer to the order's POST was made durable. This process then resumes the run
over HTTP: the orphan attempt is retried and the broker's recorded answer is served from the
file, so the order is not posted again (and had it been, its ``Idempotency-Key`` would have
made the broker answer without placing it twice). The server is then stopped, the file backed
up and the copy replayed offline (read-only, no network) and compared snapshot by snapshot.

:func:`run_demo` does it all and returns a :class:`DemoReport`; :func:`story` tells it. The
command line only wires ``mfm-store demo`` to these (``mfm_store/cli/_demo.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from ._demo_flow import OP_ID, STATES, SUBMIT, LoggedHttp, build_plan
from ._demo_server import DemoServer
from .engine import ReplayReport, RunResult, replay, resume
from .errors import CODE_DEMO_FAILED, CODE_NOT_A_DEMO_FILE, MfmError, StorageError
from .events import StateEntered
from .http import HttpTransportFactory
from .ids import RunId
from .sqlite import SqliteStore

__all__ = ["DemoReport", "copy_path_for", "default_demo_path", "run_demo", "story"]

_CHILD_TIMEOUT = 60.0


def default_demo_path() -> Path:
    """``demo.db`` in the user's data folder for mfm_store (XDG on Linux, Application Support
    on macOS, LOCALAPPDATA on Windows)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "mfm_store" / "demo.db"


def copy_path_for(path: Path) -> Path:
    """Where the demo backs ``path`` up: ``NAME-copy.db`` beside it."""
    return path.with_name(f"{path.stem}-copy{path.suffix or '.db'}")


@attrs.frozen(kw_only=True)
class DemoReport:
    """Everything the demo observed; :func:`story` turns it into text."""

    path: Path
    copy: Path
    api_url: str
    run_id: RunId
    child_pid: int
    child_calls: list[tuple[str, str]]
    crashed_in: str
    events_at_crash: int
    facts_at_crash: int
    verify_at_crash: bool
    resumed_attempts: list[int]
    reused: list[str]
    resumed_calls: list[tuple[str, str]]
    result: RunResult
    events: int
    facts: dict[str, str]
    artifacts: int
    verify_ok: bool
    copy_bytes: int
    orders_posted: int
    orders_placed: int
    replay: ReplayReport
    seconds: dict[str, float]


async def _clear(path: Path) -> None:
    """Remove an earlier demo file (with its -wal/-shm), only if it is one."""
    if not path.exists() and not path.is_symlink():
        return
    refuse = StorageError(f"{path} exists and is not an mfm_store demo file; refusing to "
                          "remove it (choose another --db)", code=CODE_NOT_A_DEMO_FILE)
    if not path.is_file():
        raise refuse
    try:
        async with SqliteStore.open(path, read_only=True) as store:
            runs = await store.list_runs()
    except MfmError:
        raise refuse from None
    if any(r.op_id != OP_ID for r in runs):
        raise refuse
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _child_env() -> dict[str, str]:
    """The child imports this very mfm_store, wherever it was loaded from."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


async def _run_child(path: Path, run_id: RunId,
                     url: str) -> tuple[int, list[tuple[str, str]], str]:
    """Start the run in a child process (talking to the server at ``url``) and SIGKILL it at
    its crash point.

    Returns ``(pid, HTTP requests, state it was killed in)``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mfm_store._demo_child", str(path), str(run_id), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_child_env())
    calls: list[tuple[str, str]] = []
    crashed_in: str | None = None
    try:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            async with asyncio.timeout(_CHILD_TIMEOUT):
                while crashed_in is None:
                    line = await proc.stdout.readline()
                    if not line:
                        break
                    if not line.startswith(b"{"):
                        continue  # not ours (a library printing something)
                    message: dict[str, Any] = json.loads(line)
                    if "call" in message:
                        calls.append((message["call"], message["key"]))
                    crashed_in = message.get("crash_point")
        except TimeoutError:
            raise MfmError(f"the demo's child process did not reach its crash point within "
                           f"{_CHILD_TIMEOUT:g} s", code=CODE_DEMO_FAILED) from None
        proc.kill()  # SIGKILL: no cleanup, no close, no flush
        await proc.wait()
        if crashed_in is None:
            err = (await proc.stderr.read()).decode(errors="replace").strip().splitlines()
            raise MfmError("the demo's child process ended before its crash point: "
                           + (err[-1] if err else f"exit code {proc.returncode}"),
                           code=CODE_DEMO_FAILED)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.pid, calls, crashed_in


async def run_demo(path: Path, copy: Path) -> DemoReport:
    """Run the whole demo into ``path`` (and its backup ``copy``), replacing earlier demo
    files there; refuses (``StorageError`` code ``not_a_demo_file``) to remove anything that
    is not one."""
    marks = {"start": time.perf_counter()}
    for p in (path, copy):
        await _clear(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_id = RunId.new()

    asked: list[str] = []
    resumed_calls: list[tuple[str, str]] = []
    with DemoServer() as api:
        pid, child_calls, crashed_in = await _run_child(path, run_id, api.url)
        marks["record"] = time.perf_counter()
        async with SqliteStore.open(path) as store, HttpTransportFactory(
                base_url=api.url) as http:
            events_at_crash = await store.head_seq(run_id)
            recorded = await store.facts(run_id)
            verify_at_crash = (await store.verify()).ok
            result = await resume(
                store, run_id, build_plan(on_ask=asked.append),
                transports=LoggedHttp(http, lambda c, k: resumed_calls.append((c, k))))
            marks["resume"] = time.perf_counter()
            stream = await store.read_range(run_id)
            facts = await store.facts(run_id)
            stats = await store.stats()
            verify_ok = (await store.verify()).ok
            await store.backup(copy)
        orders_posted, orders_placed = api.count("POST", "/broker/orders"), api.effects
        api_url = api.url
    marks["backup"] = time.perf_counter()  # the server is stopped: the replay is offline

    report = await replay(copy, run_id, build_plan())
    marks["replay"] = time.perf_counter()
    steps = list(marks)
    seconds = {b: marks[b] - marks[a] for a, b in itertools.pairwise(steps)}
    seconds["total"] = marks["replay"] - marks["start"]
    return DemoReport(
        path=path, copy=copy, api_url=api_url, run_id=run_id, child_pid=pid,
        child_calls=child_calls,
        crashed_in=crashed_in, events_at_crash=events_at_crash, facts_at_crash=len(recorded),
        verify_at_crash=verify_at_crash,
        resumed_attempts=[e.event.attempt for e in stream
                          if isinstance(e.event, StateEntered) and e.event.state_id == SUBMIT],
        reused=[k for k in asked if k in recorded], resumed_calls=resumed_calls, result=result,
        events=len(stream), facts=dict(facts), artifacts=stats["artifacts"],
        verify_ok=verify_ok, copy_bytes=copy.stat().st_size, orders_posted=orders_posted,
        orders_placed=orders_placed, replay=report, seconds=seconds)


def _requests(n: int) -> str:
    return "1 HTTP request" if n == 1 else f"{n} HTTP requests"


def _money(cents: int, symbol: str) -> str:
    return f"{symbol}{cents // 100}.{cents % 100:02d}"


def story(r: DemoReport) -> str:
    """The demo's account of what happened, with its figures."""
    ctx = r.result.final_context
    run = str(r.run_id)
    keyed = [k for k in r.facts if not k.startswith("mfm:")]
    derived = len(r.facts) - len(keyed)
    db = shlex.quote(str(r.path))
    w = max((len(ns) for ns, _ in r.child_calls + r.resumed_calls), default=0)
    lines = [
        f"mfm-store demo: one order workflow ({' -> '.join(s.split('.')[-1] for s in STATES)})",
        f"database: {r.path}",
        f"market and broker: HTTP server at {r.api_url} (started by this demo)",
        "",
        f"1. record  child process {r.child_pid} ran run {run} live;",
        f"           it sent {_requests(len(r.child_calls))}:",
        *(f"             {ns:<{w}}  {key}" for ns, key in r.child_calls),
        "           the clock and the random source were recorded as facts too",
        f"2. crash   SIGKILL inside {r.crashed_in} (attempt 0), right after the broker's answer",
        f"           was recorded: {r.events_at_crash} events, {r.facts_at_crash} facts on disk, "
        f"verify {'ok' if r.verify_at_crash else 'FAILED'}",
        f"3. resume  this process ({os.getpid()}) retried {SUBMIT} as attempt "
        f"{r.resumed_attempts[-1]},",
        "           re-using the facts recorded before the crash:",
        *(f"             {key}  (from the file: transport not called)" for key in r.reused),
        f"           it sent {_requests(len(r.resumed_calls))}, for new facts only:",
        *(f"             {ns:<{w}}  {key}" for ns, key in r.resumed_calls),
        f"           run {r.result.status.value.lower()}: order {ctx.get('order_id')} "
        f"{ctx.get('status')}, {ctx.get('qty')} x {ctx.get('symbol')} = "
        f"{_money(ctx.get('total_usd_cents', 0), '$')} = "
        f"{_money(ctx.get('total_eur_cents', 0), 'EUR ')}",
        f"           broker: order POSTs received {r.orders_posted}, orders placed "
        f"{r.orders_placed} (it honours Idempotency-Key)",
        f"4. backup  consistent copy, runs stored together: {r.copy} ({r.copy_bytes} bytes)",
        f"5. replay  server stopped; offline from the copy (read-only, no network): "
        f"{'replay identical' if r.replay.identical else 'REPLAY DIFFERS'}",
        f"           {r.replay}",
        "",
        f"figures: {r.events} events, {len(r.facts)} facts ({len(keyed)} answers, {derived} "
        f"time/random), {r.artifacts} artifacts; verify {'ok' if r.verify_ok else 'FAILED'}",
        "time:    " + ", ".join(f"{k} {v:.2f} s" for k, v in r.seconds.items()),
        "",
        "look around:",
        f"  mfm-store show {run[:8]} --db {db}",
        f"  mfm-store facts {run[:8]} --db {db} --values",
        f"  mfm-store verify --db {db}",
    ]
    return "\n".join(lines)
