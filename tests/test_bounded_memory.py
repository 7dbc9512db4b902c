"""Run-wide operations in bounded memory (issue 14 §4, beyond verify and export): sync, prune,
the CLI's run-id prefixes and ``iter_artifacts()`` read runs and artifacts a page at a time,
with the same results as before; ``iter_runs`` steps over a page-ending run pruned meanwhile.
Peak memory of push and prune measured in fresh processes on generated files.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mfm_store.follow as follow_module
import mfm_store.postgres._follow as pg_follow
import mfm_store.sync as sync_module
from benchmarks.whole_file import build
from mfm_store import (
    DomainEvent,
    EventEnvelope,
    RunCompleted,
    RunId,
    RunStatus,
    StateCompleted,
)
from mfm_store._paging import match_run
from mfm_store._rules import artifact_refs
from mfm_store.errors import MfmError, NotFoundError
from mfm_store.follow import FollowCursor
from mfm_store.memory import MemoryStore
from mfm_store.retention import choose, choose_runs
from mfm_store.sqlite import SqliteStore
from mfm_store.stores import ArtifactKind, Store, iter_runs
from mfm_store.sync import push, sync

REPO = Path(__file__).resolve().parent.parent
SMALL, LARGE = 8_000, 32_000  # events of the files whose push and prune are measured


async def _runs(store: Store, n: int, *, finished: bool = True) -> list[RunId]:
    """``n`` runs created one after the other, finished unless ``finished=False``."""
    made = []
    for i in range(n):
        run = RunId.new()
        envs = [EventEnvelope(run, 1, None, DomainEvent("tick", {"i": i}))]
        if finished:
            envs.append(EventEnvelope(run, 2, None, RunCompleted(RunStatus.COMPLETED, None)))
        await store.append(run, 0, envs)
        made.append(run)
    return made


# iter_runs: a page-ending run pruned meanwhile

@pytest.mark.parametrize("newest_first", [False, True])
async def test_iter_runs_steps_over_a_pruned_page_end(store: Store, newest_first: bool) -> None:
    made = await _runs(store, 8)
    order = made[::-1] if newest_first else made
    seen: list[RunId] = []
    async for summary in iter_runs(store, page_size=3, newest_first=newest_first):
        seen.append(summary.run_id)
        if len(seen) == 3:  # the first page is read: its last two runs go
            report = await store.prune(order[1:3])  # type: ignore[attr-defined]
            assert set(report.runs) == set(order[1:3])
    assert seen == order


async def test_iter_runs_fails_only_when_the_whole_page_is_gone(store: Store) -> None:
    made = await _runs(store, 5)
    with pytest.raises(NotFoundError) as err:
        async for summary in iter_runs(store, page_size=2):
            if summary.run_id == made[1]:
                await store.prune(made[:2])  # type: ignore[attr-defined]
    assert err.value.info.code == "run_not_found"


# prune: choosing runs from pages

async def test_choose_runs_is_choose_over_every_run(store: Store) -> None:
    made = await _runs(store, 9)
    running = await _runs(store, 2, finished=False)
    # Same update times for several runs: ties keep creation order.
    every = await store.list_runs()
    middle = every[4].updated_millis
    cases: list[dict[str, Any]] = [
        {"run_ids": None, "finished_before": None, "keep_last": 3},
        {"run_ids": None, "finished_before": None, "keep_last": 0},
        {"run_ids": None, "finished_before": None, "keep_last": 50},
        {"run_ids": None, "finished_before": middle, "keep_last": None},
        {"run_ids": None, "finished_before": middle + 1, "keep_last": 2},
        {"run_ids": None, "finished_before": 10**15, "keep_last": 1},
        {"run_ids": [made[3], str(made[0]), running[0], RunId.new(), made[3]],
         "finished_before": None, "keep_last": None},
    ]
    for case in cases:
        args = {k: v for k, v in case.items() if k != "run_ids"}
        expected = choose(every, case["run_ids"], **args)
        assert await choose_runs(store, case["run_ids"], **args) == expected, case
    bads: list[dict[str, Any]] = [
        {"run_ids": None, "finished_before": None, "keep_last": None},
        {"run_ids": [made[0]], "finished_before": 1, "keep_last": None},
        {"run_ids": None, "finished_before": None, "keep_last": -1},
        {"run_ids": ["nope"], "finished_before": None, "keep_last": None}]
    for bad in bads:
        args = {k: v for k, v in bad.items() if k != "run_ids"}
        with pytest.raises((MfmError, ValueError)) as old:
            choose(every, bad["run_ids"], **args)
        with pytest.raises((MfmError, ValueError)) as new:
            await choose_runs(store, bad["run_ids"], **args)
        assert (type(new.value), str(new.value)) == (type(old.value), str(old.value))


async def test_prune_by_policy_over_many_pages(store: Store) -> None:
    made = await _runs(store, 12)
    await _runs(store, 1, finished=False)
    report = await store.prune(keep_last=5)  # type: ignore[attr-defined]
    assert list(report.runs) == made[:7]
    assert [s.run_id for s in await store.list_runs()][:5] == made[7:]


async def test_prune_rechecks_what_is_written_after_its_snapshot(tmp_path: Path) -> None:
    """SQLite: artifacts found unreferenced are checked again, before deleting, against the
    events (and their bindings) written after the snapshot's newest row."""
    from mfm_store.events import decode_event
    from mfm_store.sqlite import _prune

    async with SqliteStore.open(tmp_path / "a.db") as store:
        await _runs(store, 2)
        pid = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"v":1}')
        snap = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b'{"s":1}')
        conn = sqlite3.connect(tmp_path / "a.db")
        try:
            sizes, top = _prune._unreferenced(conn, {pid, snap})
            assert set(sizes) == {pid, snap} and top == 4
            run = RunId.new()
            await store.append(run, 0, [
                EventEnvelope(run, 1, None, DomainEvent("fact_recorded", {
                    "key": "k", "payload_id": pid, "meta": {}})),
                EventEnvelope(run, 2, None, StateCompleted("m.main.s", snap))])
            bound = [p for (p,) in conn.execute(_prune._BINDINGS_SINCE, (top,))]
            named = [ref for (body,) in conn.execute(_prune._EVENTS_SINCE, (top,))
                     for ref in artifact_refs(decode_event(body))]
            assert (bound, named) == ([pid], [snap])
        finally:
            conn.close()


# CLI run-id prefixes

async def test_match_run_finds_ids_and_prefixes(store: Store) -> None:
    made = await _runs(store, 30)
    target = made[17]
    assert await match_run(store, str(target)) == (target, 1)
    text = str(target)
    for n in range(1, 36):
        prefix = text[:n]
        sharing = [r for r in made if str(r).startswith(prefix)]
        assert await match_run(store, prefix) == (sharing[0], len(sharing))
        if len(sharing) == 1:
            break
    assert await match_run(store, "") == (made[0], 30)
    assert await match_run(store, str(RunId.new())) == (None, 0)
    assert await match_run(store, "zz") == (None, 0)
    assert await match_run(store, text.upper()) == (None, 0)  # callers lowercase


# iter_artifacts(): keyset pages

async def test_iter_artifacts_reads_every_artifact_in_pages(store: Store) -> None:
    if not hasattr(store, "iter_artifacts"):
        assert isinstance(store, MemoryStore)  # sync and export ask it one artifact at a time
        return
    blobs = {f"blob {i}".encode(): ArtifactKind.other(f"k{i % 3}") for i in range(1234)}
    ids = await asyncio.gather(*(store.put(kind, data) for data, kind in blobs.items()))
    listed = [item async for item in store.iter_artifacts()]
    assert [aid for aid, _kind, _data in listed] == sorted(ids)
    by_id = dict(zip(ids, blobs.items(), strict=True))
    for aid, kind, data in listed:
        assert (data, kind) == by_id[aid]


# sync: destinations with more runs than it keeps heads for

@pytest.mark.parametrize("kept", [3, 1000])
async def test_sync_pages_runs_with_or_without_the_destination_heads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: int) -> None:
    monkeypatch.setattr(sync_module, "_RUN_PAGE", 4)
    monkeypatch.setattr(sync_module, "_DST_HEADS_MAX", kept)
    async with SqliteStore.open(tmp_path / "a.db") as a, MemoryStore() as b:
        made = await _runs(a, 11)
        await push(a, b, runs=made[2:7])
        extra = RunId.new()
        await b.append(extra, 0, [EventEnvelope(extra, 1, None, DomainEvent("t", {}))])
        # Run 9 diverges at the destination: reported in source order, the others copied.
        await b.append(made[9], 0, [EventEnvelope(made[9], 1, None, DomainEvent("x", {}))])
        await a.append(made[4], 2, [EventEnvelope(made[4], 3, None, DomainEvent("more", {}))])
        seen: list[tuple[str, int, int | None]] = []
        report = await sync(a, b, progress=lambda phase, n, total: seen.append((phase, n, total)))
        assert (report.runs, report.runs_added, report.runs_extended,
                report.runs_unchanged) == (11, 5, 1, 4)
        assert [(p.run_id, p.code, p.seq) for p in report.problems] == [
            (made[9], "sync_diverged", 1)]
        assert seen[0] == ("sync", 0, 5 * 2 + 1 + 1)
        assert report.events_copied == 5 * 2 + 1
        for rid in made:
            if rid != made[9]:
                assert await b.read_range(rid) == await a.read_range(rid)
        again = await sync(a, b)
        assert (again.runs_unchanged, len(again.problems)) == (10, 1)


# follow every run: polls read the runs a page at a time (PostgreSQL)

async def test_following_every_run_over_many_pages(store: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow_module, "_PAGE", 5)  # events per fetch
    monkeypatch.setattr(pg_follow, "_RUN_PAGE", 3)
    made = await _runs(store, 13)
    follower = store.follow()  # type: ignore[attr-defined]
    got: list[tuple[RunId, int]] = []
    cursors = []

    async def read() -> None:
        async for env in follower:
            got.append((env.run_id, env.seq))
            cursors.append(follower.cursor)
            if len(got) == 26:
                return

    async with follower:
        await asyncio.wait_for(read(), 10.0)  # a bound on waiting, never a synchronisation
    assert sorted(got) == sorted((r, s) for r in made for s in (1, 2))
    for r in made:
        assert [s for rid, s in got if rid == r] == [1, 2]
    if cursors[-1].seqs is not None:  # PostgreSQL: each run's seq after each event
        for n, cursor in enumerate(cursors, start=1):
            expected: dict[str, int] = {}
            for rid, seq in got[:n]:
                expected[str(rid)] = seq
            assert dict(cursor.seqs) == expected
            assert FollowCursor.parse(cursor.to_text()) == cursor
    # Resumed from a cursor past a pruned run: the rest, once.
    await store.prune([made[0]])  # type: ignore[attr-defined]
    await store.append(made[5], 2, [EventEnvelope(made[5], 3, None, DomainEvent("t", {}))])
    async with store.follow(after=cursors[-1]) as again:  # type: ignore[attr-defined]
        env = await asyncio.wait_for(anext(again), 10.0)
        assert (env.run_id, env.seq) == (made[5], 3)


# peak memory, in fresh processes

_CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from benchmarks.stream_child import _peak_rss_mb, _status_mb
from mfm_store.sqlite import SqliteStore
from mfm_store.sync import push

async def main(op, path, scratch):
    if op == "push":
        async with SqliteStore.open(path, read_only=True) as src, \
                SqliteStore.open(Path(scratch) / "push.db", durability="normal") as dst:
            report = await push(src, dst)
            return {"ok": report.ok, "events": report.events_copied}
    import sqlite3
    with sqlite3.connect(path) as conn:  # the oldest runs: finished before the second's end
        (second,), = conn.execute("SELECT updated_ms FROM runs ORDER BY updated_ms"
                                  " LIMIT 1 OFFSET 1").fetchall()
    conn.close()
    async with SqliteStore.open(path, durability="normal") as store:
        report = await store.prune(finished_before=second + 1, artifact_min_age_seconds=0)
        return {"ok": 2 <= len(report.runs) < 100, "events": report.events}

base = _status_mb("VmRSS") or 0.0
started = time.perf_counter()
out = asyncio.run(main(*sys.argv[1:4]))
out.update(seconds=time.perf_counter() - started, peak_mb=_peak_rss_mb(), base_mb=base)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Generated files of 8k and 32k events (bindings and artifacts in proportion)."""
    folder = tmp_path_factory.mktemp("bounded")
    out = {}
    for events in (SMALL, LARGE):
        path = folder / f"w{events}.db"
        asyncio.run(build(path, events, quiet=True))
        out[events] = path
    return out


def _peak_growth(op: str, path: Path, scratch: Path) -> dict[str, Any]:
    scratch.mkdir()
    if op == "prune":  # prune writes: on a copy
        path = Path(shutil.copy(path, scratch / "copy.db"))
    proc = subprocess.run([sys.executable, "-c", _CHILD, op, str(path), str(scratch),
                           str(REPO)], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"], result
    result["growth"] = result["peak_mb"] - result["base_mb"]
    return result


@pytest.mark.parametrize("op", ["push", "prune"])
def test_peak_memory_does_not_grow_with_the_file(files: dict[int, Path], tmp_path: Path,
                                                  op: str) -> None:
    small = _peak_growth(op, files[SMALL], tmp_path / "small")
    large = _peak_growth(op, files[LARGE], tmp_path / "large")
    assert large["growth"] - small["growth"] < 3.0, (small, large)
