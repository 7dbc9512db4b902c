"""PostgreSQL store benchmark: ``python -m benchmarks.pg [--dsn DSN] [--appends N] [--rounds R]``.

Runs on its own (not part of ``python -m benchmarks``). Without ``--dsn`` it starts a
throwaway server (``tests/helpers/pg_server.py``: fsync on, the server's default
``synchronous_commit = on``), so both sides pay the same durable WAL flush per commit.

Measured, in one run, ratios first (absolute figures drift on a shared machine):

- ``append_seq``: sequential 1-event appends, ``durability="full"``, ours against raw psycopg
  (async, same driver) running the same statements (conditional head UPDATE, event INSERT
  with a pre-encoded body and pre-computed checksum) in one transaction per append. The two
  sides alternate one append at a time, each on its own run and schema, each timed alone.
- ``append_concurrent``: 100 tasks each appending to its own run against 1 task (throughput
  ratio), with the p99 latency of one append under 100 tasks.
- ``round_trips``: client-server round trips per append, per ``record_fact`` and per
  ``bind_fact``, counted from libpq's own protocol trace of the store's one connection.
- ``facts``: ``LiveIo`` recording a fact (payload, binding and event in one durable write),
  1 task and 100 tasks on their own runs, against ``eventsourcing``'s PostgreSQL recorder
  storing one event per transaction (1 thread and 100 threads; its API is blocking) and, its
  best case, 100 events per transaction from one thread, when ``eventsourcing`` is installed
  (the ``bench`` extra).
- ``dbos``: the same facts against DBOS workflow steps with DBOS's system database on this
  server (the configuration DBOS recommends for production): one workflow of many steps, and
  100 concurrent async workflows of at least 20 steps each, so that the figure is per step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunId
from mfm_store.events import encode_event
from mfm_store.postgres import PostgresStore

from . import raw as cs  # the row checksums as the README defines them

ROOT = Path(__file__).resolve().parent.parent


def _schema() -> str:
    return f"bench_{uuid.uuid4().hex[:12]}"


def _env(run: RunId, seq: int) -> EventEnvelope:
    return EventEnvelope(run, seq, None, DomainEvent("tick", {"n": seq}))


class RawAppender:
    """The same statements our append runs, by hand, one transaction per append."""

    UPDATE = ("UPDATE runs SET head_seq = %s, updated_ms = %s"
              " WHERE run_id = %s AND head_seq = %s RETURNING run_pk")
    INSERT = ("INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
              " VALUES (%s, %s, %s, %s, %s, %s, %s)")

    def __init__(self, conn: psycopg.AsyncConnection[Any], run: RunId) -> None:
        self.conn, self.run, self.rid = conn, run, str(run)

    async def append(self, expected: int, body: bytes, checksum: int) -> None:
        seq = expected + 1
        async with self.conn.transaction():
            cur = await self.conn.execute(self.UPDATE, (seq, int(time.time() * 1000),
                                                        self.rid, expected))
            row = await cur.fetchone()
            assert row is not None, "head moved"
            await self.conn.execute(self.INSERT, (row[0], seq, None, "Domain", "tick",
                                                  checksum, body))


class RawPipelineAppender(RawAppender):
    """The same statements and transaction sent in pipeline mode: the run's key known in
    advance (no dependency between the statements), one round trip per append."""

    INSERT_KNOWN = ("INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)")

    def __init__(self, conn: psycopg.AsyncConnection[Any], run: RunId, run_pk: int) -> None:
        super().__init__(conn, run)
        self.run_pk = run_pk

    async def append(self, expected: int, body: bytes, checksum: int) -> None:
        seq = expected + 1
        async with self.conn.pipeline(), self.conn.transaction():
            cur = await self.conn.execute(self.UPDATE, (seq, int(time.time() * 1000),
                                                        self.rid, expected))
            await self.conn.execute(self.INSERT_KNOWN, (self.run_pk, seq, None, "Domain",
                                                        "tick", checksum, body))
        assert await cur.fetchone() is not None, "head moved"


async def append_seq(dsn: str, appends: int) -> dict[str, Any]:
    ours_schema, raw_schema, pipe_schema = _schema(), _schema(), _schema()
    ours_run, raw_run, pipe_run = RunId.new(), RunId.new(), RunId.new()
    async with PostgresStore.open(dsn, schema=ours_schema, pool_size=1) as ours, \
            PostgresStore.open(dsn, schema=raw_schema, pool_size=1) as seed, \
            PostgresStore.open(dsn, schema=pipe_schema, pool_size=1) as pipe_seed:
        await seed.append(raw_run, 0, [_env(raw_run, 1)])  # the raw sides' run rows
        await pipe_seed.append(pipe_run, 0, [_env(pipe_run, 1)])
        await ours.append(ours_run, 0, [_env(ours_run, 1)])
        raw_conn = await psycopg.AsyncConnection.connect(
            dsn, options=f"-c search_path={raw_schema}")
        pipe_conn = await psycopg.AsyncConnection.connect(
            dsn, options=f"-c search_path={pipe_schema}")
        try:
            cur = await pipe_conn.execute("SELECT run_pk FROM runs")
            (pipe_pk,), = await cur.fetchall()
            await pipe_conn.commit()
            raw = RawAppender(raw_conn, raw_run)
            pipe = RawPipelineAppender(pipe_conn, pipe_run, pipe_pk)
            times: dict[str, list[float]] = {"ours": [], "raw": [], "raw_pipeline": []}
            order = list(times)
            for i in range(1, appends + 1):
                for name in order[i % 3:] + order[:i % 3]:  # each side first in turn
                    if name == "ours":
                        env = _env(ours_run, i + 1)
                        start = time.perf_counter()
                        await ours.append(ours_run, i, [env])
                    else:
                        run = raw_run if name == "raw" else pipe_run
                        body = encode_event(_env(run, i + 1).event)
                        checksum = cs.event_sum(str(run), i + 1, None, "Domain", "tick", body)
                        side = raw if name == "raw" else pipe
                        start = time.perf_counter()
                        await side.append(i, body, checksum)
                    times[name].append(time.perf_counter() - start)
        finally:
            await raw_conn.close()
            await pipe_conn.close()
    rate = {name: len(t) / sum(t) for name, t in times.items()}
    return {"ours_per_s": round(rate["ours"]), "raw_per_s": round(rate["raw"]),
            "raw_pipeline_per_s": round(rate["raw_pipeline"]),
            "ratio": round(rate["ours"] / rate["raw"], 3),
            "ratio_to_pipeline": round(rate["ours"] / rate["raw_pipeline"], 3),
            **{f"{name}_median_ms": round(statistics.median(t) * 1000, 3)
               for name, t in times.items()}}


async def _appenders(store: PostgresStore, tasks: int, per_task: int) -> tuple[float, list[float]]:
    runs = [RunId.new() for _ in range(tasks)]
    latencies: list[float] = []

    async def one(run: RunId) -> None:
        for seq in range(1, per_task + 1):
            start = time.perf_counter()
            await store.append(run, seq - 1, [_env(run, seq)])
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(one(r) for r in runs))
    elapsed = time.perf_counter() - start
    return tasks * per_task / elapsed, latencies


async def append_concurrent(dsn: str, per_task: int, rounds: int,
                            pool_size: int) -> dict[str, Any]:
    """1 task and 100 tasks take turns (4 turns of each per round, the order alternating),
    so drift on a shared machine hits both; the ratio is per round, then the median."""
    ratios, p99s, single, many = [], [], [], []
    async with PostgresStore.open(dsn, schema=_schema(), pool_size=pool_size) as store:
        await _appenders(store, 100, 2)  # warm the pool up to its size
        for r in range(rounds):
            one_t = one_n = many_t = many_n = 0.0
            lat: list[float] = []
            for turn in range(4):
                for side in ((1, 100) if (r + turn) % 2 else (100, 1)):
                    n = per_task if side == 100 else max(per_task, 25)
                    start = time.perf_counter()
                    _rate, turn_lat = await _appenders(store, side, n)
                    elapsed = time.perf_counter() - start
                    if side == 1:
                        one_t, one_n = one_t + elapsed, one_n + n
                    else:
                        many_t, many_n = many_t + elapsed, many_n + 100 * n
                        lat += turn_lat
            single.append(one_n / one_t)
            many.append(many_n / many_t)
            ratios.append(many[-1] / single[-1])
            p99s.append(statistics.quantiles(lat, n=100)[98])
    return {"one_task_per_s": round(statistics.median(single)),
            "hundred_tasks_per_s": round(statistics.median(many)),
            "ratio": round(statistics.median(ratios), 2),
            "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
            "p99_ms_100_tasks": round(statistics.median(p99s) * 1000, 2),
            "rounds": rounds, "pool_size": pool_size}


class _InstantTransport:
    """Answers at once from the request: the IO costs nothing."""

    async def call(self, call: Any) -> Any:
        return {"price": call.request["i"] * 7 + 1, "currency": "EUR"}


def _live_io(store: PostgresStore, run: RunId) -> Any:
    from mfm_store import FactIndex, LiveIo, StateId, StoreFactRecorder

    return LiveIo(run, StateId("bench.main.fetch"), 0, store, FactIndex(),
                  StoreFactRecorder(store, run), _InstantTransport())


async def _ours_facts(store: PostgresStore, tasks: int, per_task: int) -> float:
    from mfm_store import IoCall

    plans = [(_live_io(store, RunId.new()),
              [IoCall("bench.quotes", {"i": i}, fact_key=f"quote:{i}") for i in range(per_task)])
             for _ in range(tasks)]

    async def worker(io: Any, calls: list[Any]) -> None:
        for call in calls:
            await io.call(call)

    start = time.perf_counter()
    await asyncio.gather(*(worker(io, calls) for io, calls in plans))
    return tasks * per_task / (time.perf_counter() - start)


def _es_batched(recorder: Any, events: int, per_tx: int = 100) -> float:
    """eventsourcing's recorder at its best: ``per_tx`` events per ``insert_events`` call
    (one transaction), one thread."""
    from eventsourcing.persistence import StoredEvent

    state = json.dumps({"key": "quote:0", "payload": {"price": 8, "currency": "EUR"}}).encode()
    originator = uuid.uuid4()
    batches = [[StoredEvent(originator_id=originator, originator_version=v, topic="benchmarks:Fact",
                            state=state) for v in range(start, start + per_tx)]
               for start in range(1, events + 1, per_tx)]
    start = time.perf_counter()
    for batch in batches:
        recorder.insert_events(batch)
    return events / (time.perf_counter() - start)


def _es_facts(recorder: Any, tasks: int, per_task: int) -> float:
    """eventsourcing's recorder: one stored event per ``insert_events`` (one transaction)."""
    from concurrent.futures import ThreadPoolExecutor

    from eventsourcing.persistence import StoredEvent

    state = json.dumps({"key": "quote:0", "payload": {"price": 8, "currency": "EUR"}}).encode()

    def worker(_t: int) -> None:
        originator = uuid.uuid4()
        for v in range(1, per_task + 1):
            recorder.insert_events([StoredEvent(originator_id=originator, originator_version=v,
                                                topic="benchmarks:Fact", state=state)])

    start = time.perf_counter()
    if tasks == 1:
        worker(0)
    else:
        with ThreadPoolExecutor(tasks) as pool:
            list(pool.map(worker, range(tasks)))
    return tasks * per_task / (time.perf_counter() - start)


async def facts_vs_eventsourcing(dsn: str, per_task: int, rounds: int,
                                 pool_size: int) -> dict[str, Any]:
    """LiveIo fact recording (payload, binding and event in one durable write) against
    eventsourcing's PostgreSQL recorder storing one event per transaction, same server, same
    pool size; 1 task and 100 tasks (threads for eventsourcing, whose API is blocking)."""
    try:
        from eventsourcing.postgres import PostgresAggregateRecorder, PostgresDatastore
    except ImportError as exc:
        return {"skipped": f"eventsourcing is not installed ({exc.name})"}
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    schema = _schema()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
        await admin.execute(f"CREATE SCHEMA {schema}")
    datastore = PostgresDatastore(str(parts.get("dbname") or "postgres"),
                                  str(parts.get("host") or "localhost"),
                                  str(parts.get("port") or 5432),
                                  str(parts.get("user") or "postgres"),
                                  str(parts.get("password") or ""), pool_size=pool_size,
                                  max_overflow=0, max_waiting=200, schema=schema)
    recorder = PostgresAggregateRecorder(datastore, events_table_name="stored_events")
    recorder.create_table()
    rates: dict[str, list[float]] = {"ours_1": [], "es_1": [], "ours_100": [], "es_100": [],
                                     "es_batched": []}
    try:
        async with PostgresStore.open(dsn, schema=_schema(), pool_size=pool_size) as store:
            await _ours_facts(store, 100, 1)  # warm the pool up to its size
            await asyncio.to_thread(_es_facts, recorder, 100, 1)
            for r in range(rounds):
                order = ["ours", "es"] if r % 2 else ["es", "ours"]
                for tasks, n in ((1, per_task * 20), (100, per_task)):
                    for side in order:
                        if side == "ours":
                            rates[f"ours_{tasks}"].append(await _ours_facts(store, tasks, n))
                        else:
                            rates[f"es_{tasks}"].append(
                                await asyncio.to_thread(_es_facts, recorder, tasks, n))
                rates["es_batched"].append(
                    await asyncio.to_thread(_es_batched, recorder, per_task * 100))
    finally:
        datastore.close()
    out: dict[str, Any] = {k: round(statistics.median(v)) for k, v in rates.items()}
    for tasks in (1, 100):
        ratios = [o / e for o, e in zip(rates[f"ours_{tasks}"], rates[f"es_{tasks}"],
                                         strict=True)]
        out[f"ratio_{tasks}"] = round(statistics.median(ratios), 2)
        out[f"ratio_{tasks}_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
    ratios = [o / e for o, e in zip(rates["ours_100"], rates["es_batched"], strict=True)]
    out["ratio_100_vs_es_batched"] = round(statistics.median(ratios), 2)
    out["pool_size"] = pool_size
    return out


async def facts_vs_dbos(dsn: str, per_task: int, rounds: int, pool_size: int
                        ) -> dict[str, Any]:
    """LiveIo facts against DBOS steps, both on this server (DBOS's recommended system
    database): 1 task against one workflow of many steps (per step, not per workflow), 100
    tasks against 100 concurrent async workflows of ``per_task`` steps each."""
    try:
        from .peers import DbosPeer
        peer = DbosPeer(None, postgres_url=_tcp_url(dsn, "dbos_bench"))
    except ImportError as exc:
        return {"skipped": f"dbos is not installed ({exc.name})"}
    rates: dict[str, list[float]] = {"ours_1": [], "dbos_1": [], "ours_100": [], "dbos_100": []}
    try:
        async with PostgresStore.open(dsn, schema=_schema(), pool_size=pool_size) as store:
            await _ours_facts(store, 100, 1)
            await peer.run_concurrent(100, 1)
            for r in range(rounds):
                order = ["ours", "dbos"] if r % 2 else ["dbos", "ours"]
                # Workflows of at least 20 steps, so that DBOS's per-workflow row does not
                # dominate what is compared: steps against facts.
                for tasks, n in ((1, per_task * 20), (100, max(per_task, 20))):
                    for side in order:
                        if side == "ours":
                            rates[f"ours_{tasks}"].append(await _ours_facts(store, tasks, n))
                            continue
                        start = time.perf_counter()
                        if tasks == 1:
                            await peer.run_sequential(n)
                        else:
                            await peer.run_concurrent(tasks, n)
                        rates[f"dbos_{tasks}"].append(tasks * n / (time.perf_counter() - start))
    finally:
        peer.close()
    out: dict[str, Any] = {k: round(statistics.median(v)) for k, v in rates.items()}
    for tasks in (1, 100):
        ratios = [o / d for o, d in zip(rates[f"ours_{tasks}"], rates[f"dbos_{tasks}"],
                                         strict=True)]
        out[f"ratio_{tasks}"] = round(statistics.median(ratios), 2)
        out[f"ratio_{tasks}_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
    out["description"] = peer.description
    return out


def _tcp_url(dsn: str, dbname: str) -> str:
    """A SQLAlchemy-style URL for DBOS to the same server, database ``dbname`` (DBOS creates
    it)."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    user = parts.get("user") or "postgres"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or 5432
    if str(host).startswith("/"):
        return f"postgresql://{user}@/{dbname}?host={host}&port={port}"
    return f"postgresql://{user}@{host}:{port}/{dbname}"


def _round_trips(trace: str) -> int:
    """Frontend-to-backend turns in a libpq trace: each is one round trip."""
    trips, last = 0, ""
    for line in trace.splitlines():
        parts = line.split("\t")
        direction = parts[1] if len(parts) > 1 and parts[0][:1].isdigit() else parts[0]
        direction = direction.strip()
        if direction == "B" and last == "F":
            trips += 1
        if direction in ("F", "B"):
            last = direction
    return trips


async def round_trips(dsn: str, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with PostgresStore.open(dsn, schema=_schema(), pool_size=1) as store:
        run = RunId.new()
        await store.append(run, 0, [_env(run, 1)])
        payloads = [await store.put(ArtifactKind.FACT_PAYLOAD, f"p{i}".encode())
                    for i in range(n)]
        with tempfile.TemporaryFile("w+") as trace_file:
            async with store._pool.connection() as conn:
                conn.pgconn.trace(trace_file.fileno())
                conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            ops = {
                "append": [lambda i=i: store.append(run, 1 + i, [_env(run, 2 + i)])
                           for i in range(n)],
            }
            for name, calls in ops.items():
                trace_file.seek(0)
                trace_file.truncate()
                for call in calls:
                    await call()
                trace_file.flush()
                trace_file.seek(0)
                out[f"per_{name}"] = round(_round_trips(trace_file.read()) / n, 2)
            head = await store.head_seq(run)
            for name, call in (("record_fact", lambda i: store.record_fact(
                    run, f"r{i}", f"data {i}".encode())),
                               ("bind_fact", lambda i: store.bind_fact(
                                   run, f"b{i}", payloads[i]))):
                trace_file.seek(0)
                trace_file.truncate()
                for i in range(n):
                    await call(i)
                trace_file.flush()
                trace_file.seek(0)
                out[f"per_{name}"] = round(_round_trips(trace_file.read()) / n, 2)
            assert await store.head_seq(run) == head + 2 * n
            async with store._pool.connection() as conn:
                conn.pgconn.untrace()
            # The same count for the raw baseline (BEGIN, UPDATE, INSERT, COMMIT).
            raw_conn = await psycopg.AsyncConnection.connect(
                dsn, options=f"-c search_path={store.schema}")
            try:
                trace_file.seek(0)
                trace_file.truncate()
                raw_conn.pgconn.trace(trace_file.fileno())
                raw_conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
                raw = RawAppender(raw_conn, run)
                head = await store.head_seq(run)
                for i in range(n):
                    env = _env(run, head + i + 1)
                    body = encode_event(env.event)
                    await raw.append(head + i, body, cs.event_sum(
                        str(run), head + i + 1, None, "Domain", "tick", body))
                raw_conn.pgconn.untrace()
                trace_file.flush()
                trace_file.seek(0)
                out["raw_per_append"] = round(_round_trips(trace_file.read()) / n, 2)
            finally:
                await raw_conn.close()
    return out


def _server() -> Any:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.pg_server import PgServer

    return PgServer.start()


async def run_all(dsn: str, appends: int, rounds: int, pool_size: int,
                  only: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "round_trips" in only:
        results["round_trips"] = await round_trips(dsn, 50)
    if "append_seq" in only:
        results["append_seq"] = await append_seq(dsn, appends)
    if "append_concurrent" in only:
        results["append_concurrent"] = await append_concurrent(
            dsn, max(appends // 200, 3), rounds, pool_size)
    if "facts" in only:
        results["facts"] = await facts_vs_eventsourcing(dsn, max(appends // 100, 3), rounds,
                                                        pool_size)
    if "dbos" in only:
        results["dbos"] = await facts_vs_dbos(dsn, max(appends // 100, 3), rounds, pool_size)
    return results


SCENARIOS = ("round_trips", "append_seq", "append_concurrent", "facts", "dbos")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="use this server (default: start a throwaway one)")
    parser.add_argument("--appends", type=int, default=1000,
                        help="sequential appends per side (default 1000)")
    parser.add_argument("--rounds", type=int, default=9,
                        help="rounds of the concurrency scenario (default 9)")
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios (default: all of {','.join(SCENARIOS)})")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    server = None if args.dsn else _server()
    try:
        dsn = args.dsn or server.dsn
        only = tuple(name for name in args.only.split(",") if name)
        unknown = set(only) - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        results = asyncio.run(run_all(dsn, args.appends, args.rounds, args.pool_size, only))
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
