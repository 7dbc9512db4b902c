"""The web inspector without a browser: the run model, the pages over real SQLite files (through
the ASGI app in process), and the server process (Ctrl-C, --open, errors)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.browser import MARKUP_IMG, MARKUP_SCRIPT, inspector, write_markup_run

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    EventEnvelope,
    ExecutionPlan,
    PlanState,
    RunConfig,
    RunId,
    StateFailure,
    start,
)
from mfm_store.engine.manifest import Duration, FixedBackoff, RetryPolicy
from mfm_store.events import RunCompleted, RunStarted, RunStatus, StateCompleted, StateEntered
from mfm_store.sqlite import SqliteStore
from mfm_store.ui import InspectorApp, create_app
from mfm_store.ui._model import build_run, json_diff

HOST = "127.0.0.1:8765"
SNAP = "0" * 64
OTHER = "1" * 64


def _envs(run: RunId, events: list[Any]) -> list[EventEnvelope]:
    return [EventEnvelope(run, i + 1, None, e) for i, e in enumerate(events)]


def _fact(key: str, pid: str = SNAP) -> DomainEvent:
    return DomainEvent("fact_recorded", {"key": key, "payload_id": pid, "meta": {}})


# the model ------------------------------------------------------------------------------


def test_model_marks_the_crashed_attempt_and_the_facts_its_retry_reuses() -> None:
    run = RunId.new()
    time_key = f"mfm:now_millis|run:{run}|state:m.s.a|attempt:0|ord:0"
    model = build_run(str(run), _envs(run, [
        RunStarted("op", SNAP, SNAP),
        StateEntered("m.s.a", 0, SNAP),
        _fact("quote"), _fact(time_key), DomainEvent("note", {"x": 1}),
        StateEntered("m.s.a", 1, SNAP),
        _fact(time_key.replace("attempt:0", "attempt:1")),
        StateCompleted("m.s.a", OTHER),
        StateEntered("m.s.b", 0, OTHER),
    ]))
    first, retry, last = model.attempts
    assert (first.outcome, retry.outcome, last.outcome) == ("crashed", "completed", "open")
    assert [f.key for f in first.facts] == ["quote", time_key]
    assert [e.name for e in first.events] == ["note"]
    # The explicit key serves the retry; the time fact of attempt 0 does not.
    assert [(f.key, f.seq, f.reused_from_attempt) for f in retry.reused] == [("quote", 3, 0)]
    assert retry.retry_of == "crashed" and retry.previous_attempt == 0
    assert (retry.base_snapshot_id, retry.snapshot_id) == (SNAP, OTHER)
    assert model.status == "running" and model.op_id == "op" and model.head_seq == 9
    assert (model.states, model.real_attempts, model.count("crashed")) == (2, 3, 1)


def test_model_groups_events_outside_any_state() -> None:
    run = RunId.new()
    model = build_run(str(run), _envs(run, [DomainEvent("hello", {}), _fact("k")]))
    (group,) = model.attempts
    assert group.state_id is None and group.outcome == "events"
    assert (group.first_seq, group.last_seq, len(group.items)) == (1, 2, 2)
    assert model.manifest_id is None and model.status == "running"


def test_json_diff_lists_leaf_changes() -> None:
    old = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": True, "odd key": 1}
    new = {"a": 1, "b": {"c": [1, 3, 4], "d": "y"}, "new": None, "odd key": 2}
    assert [(c.path, c.op, c.old, c.new) for c in json_diff(old, new)] == [
        ("b.c[1]", "changed", "2", "3"),
        ("b.c[2]", "added", None, "4"),
        ("b.d", "changed", '"x"', '"y"'),
        ("gone", "removed", "true", None),
        ("new", "added", None, "null"),
        ('"odd key"', "changed", "1", "2"),
    ]
    assert json_diff({"a": 1}, {"a": 1}) == []
    assert [c.op for c in json_diff(1, True)] == ["changed"]  # a bool is not an int


# the pages, in process -----------------------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Path, SqliteStore]]:
    """A file written by the library, and the same file opened read-only for the pages."""
    path = tmp_path / "runs.db"
    async with SqliteStore.open(path) as writer:
        await write_markup_run(writer)
    async with SqliteStore.open(path, read_only=True) as store:
        yield path, store


@pytest.fixture
async def app(db: tuple[Path, SqliteStore]) -> AsyncIterator[InspectorApp]:
    inspector_app = create_app(db[1], allowed_hosts={HOST}, label=str(db[0]))
    yield inspector_app
    await inspector_app.aclose()


@pytest.fixture
async def client(app: InspectorApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
        yield c


async def _run_id(client: httpx.AsyncClient) -> str:
    found = re.findall(r'href="/runs/([0-9a-f-]{36})"', (await client.get("/")).text)
    return str(found[0])


async def test_every_response_is_guarded(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    foreign = await client.get("/", headers={"Host": "evil.example:8765"})
    assert foreign.status_code == 403 and "Host header" in foreign.text
    assert foreign.headers["content-security-policy"] == csp
    assert (await client.get("/", headers={"Host": "127.0.0.1:9999"})).status_code == 403
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        refused = await client.request(method, "/verify")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    static = await client.get("/static/ui.js")
    assert static.status_code == 200 and "content-security-policy" in static.headers


async def test_stored_markup_is_escaped(client: httpx.AsyncClient) -> None:
    run = await _run_id(client)
    html = (await client.get(f"/runs/{run}")).text
    assert "<img" not in html and "window.__pwned" in html
    assert html.count("<script") == 1  # the page's own script tag
    assert "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in html
    assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in html
    assert "markup_error" in html and "failed on" in html
    events = (await client.get(f"/runs/{run}/events")).text
    assert "<img" not in events and events.count("<script") == 1
    assert MARKUP_IMG not in events and MARKUP_SCRIPT not in events


async def test_artifact_pages_and_download(client: httpx.AsyncClient,
                                           db: tuple[Path, SqliteStore]) -> None:
    path, _ = db
    async with SqliteStore.open(path) as writer:  # a writer beside the read-only reader
        blob = bytes(range(256)) * 3
        bid = await writer.put(ArtifactKind.other("blob"), blob)
        jid = await writer.put(ArtifactKind.OUTPUT, b'{"b":[1,2],"a":"<b>x</b>"}')
    page = await client.get(f"/artifacts/{jid}")
    assert page.status_code == 200
    assert '{\n  &#34;b&#34;: [\n    1,\n    2\n  ],\n  &#34;a&#34;: &#34;&lt;b&gt;x&lt;/b&gt;' \
        in page.text
    page = await client.get(f"/artifacts/{bid.upper()}")
    assert page.status_code == 200 and "00000000" in page.text and "bytes" in page.text
    assert "00 01 02 03" in page.text and "First 768" not in page.text
    down = await client.get(f"/artifacts/{bid}/download")
    assert down.content == blob
    assert down.headers["content-disposition"] == f'attachment; filename="{bid}.bin"'
    assert down.headers["content-type"] == "application/octet-stream"
    assert down.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(f"/artifacts/{'ab' * 32}")).status_code == 404
    assert (await client.get("/artifacts/not-an-id")).status_code == 400
    assert (await client.get("/artifacts/not-an-id/download")).status_code == 400
    assert (await client.get(f"/runs/{RunId.new()}")).status_code == 404
    assert (await client.get("/runs/nope")).status_code == 400
    assert (await client.get("/nowhere")).status_code == 404


async def test_runs_page_is_paged_filtered_and_searchable(tmp_path: Path) -> None:
    path = tmp_path / "many.db"
    ids: list[str] = []
    async with SqliteStore.open(path, durability="normal") as writer:
        mid = await writer.put(ArtifactKind.MANIFEST, b"{}")
        for i in range(120):
            run = RunId.new()
            ids.append(str(run))
            await writer.append(run, 0, _envs(run, [RunStarted(f"op{i % 2}", mid, mid)]))
    async with SqliteStore.open(path, read_only=True) as store:
        app = create_app(store, allowed_hosts={HOST})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
            def rows(html: str) -> list[str]:
                return re.findall(r'<td class="id"><a href="/runs/([0-9a-f-]{36})"', html)

            first = (await c.get("/")).text
            assert rows(first) == ids[::-1][:50]  # most recently updated first
            assert "1\u201350 of 120" in first and 'href="/?offset=50"' in first
            last = (await c.get("/?offset=100")).text
            assert rows(last) == ids[::-1][100:] and 'rel="next"' not in last
            assert rows((await c.get("/?offset=oops")).text) == ids[::-1][:50]
            op1 = (await c.get("/?op=op1")).text
            assert set(rows(op1)) == set(ids[1::2][-50:]) and "of 60 matching" in op1
            assert rows((await c.get("/?status=completed")).text) == []
            assert rows((await c.get(f"/?q={ids[7][:13].upper()}")).text) == [ids[7]]
        await app.aclose()


async def test_failed_attempt_shows_redacted_error_retry_and_backoff(tmp_path: Path) -> None:
    path = tmp_path / "retry.db"
    tries: list[int] = []

    async def flaky(ctx: Any, io: Any, recorder: Any) -> None:
        tries.append(1)
        ctx["tries"] = len(tries)
        if len(tries) == 1:
            raise StateFailure("upstream said: api_key=abc rejected", code="upstream",
                               retryable=True)

    plan = ExecutionPlan("flow", [PlanState("flow.main.fetch", flaky)])
    policy = RetryPolicy(3, FixedBackoff(Duration.from_millis(250)))
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async with SqliteStore.open(path) as writer:
        result = await start(writer, plan, {"n": 1}, config=RunConfig(retry_policy=policy),
                             sleep=no_wait)
    assert waits == [0.25]
    async with SqliteStore.open(path, read_only=True) as store:
        app = create_app(store, allowed_hosts={HOST})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
            html = (await c.get(f"/runs/{result.run_id}")).text
        await app.aclose()
    assert '<li class="attempt failed"' in html and '<li class="attempt completed"' in html
    assert "upstream" in html and "error details redacted" in html and "abc" not in html
    assert "Retry after attempt 0 failed with a retryable error; backoff 0.25 s " \
           "(fixed backoff, at most 3 attempts)" in html
    assert "retry: at most 3 attempts, fixed backoff 0.25 s" in html
    assert "tries" in html and "added" in html  # the context diff of the completed attempt


async def test_long_runs_are_paged(tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    run = RunId.new()
    async with SqliteStore.open(path, durability="normal") as writer:
        snap = await writer.put(ArtifactKind.CONTEXT_SNAPSHOT, b'{"i":0}')
        events: list[Any] = [RunStarted("op", snap, snap)]
        for i in range(60):
            events += [StateEntered(f"m.s.s{i}", 0, snap), StateCompleted(f"m.s.s{i}", snap)]
        events += [StateEntered("m.s.big", 0, snap)]
        events += [DomainEvent("tick", {"i": i}) for i in range(700)]
        await writer.append(run, 0, _envs(run, events))
    async with SqliteStore.open(path, read_only=True) as store:
        app = create_app(store, allowed_hosts={HOST})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
            first = (await c.get(f"/runs/{run}")).text
            # Read far enough for the first page only: 500 of the 822 events.
            assert first.count('<li class="attempt') == 25 and "page 1 of 3+" in first
            assert "In seq 1\u2013500 (read so far" in first and 'rel="next"' in first
            assert "data-live=" in first  # still running: the page follows its head
            last = (await c.get(f"/runs/{run}?page=2")).text
            assert last.count('<li class="attempt') == 11 and "page 3 of 3<" in last
            assert "read so far" not in last and 'rel="next"' not in last
            assert "61 attempts" in last
            assert "500 more events in this attempt" in last
            assert f'href="/runs/{run}/events?from=323"' in last
            assert (await c.get(f"/runs/{run}?page=9")).text.count('<li class="attempt') == 11
            assert (await c.get(f"/runs/{run}/head")).json() == {"head": 822}
            listed = (await c.get(f"/runs/{run}/events?from=323")).text
            assert listed.count('<tr id="seq-') == 500 and "?from=823" not in listed
            assert "seq 323\u2013822 of 822" in listed
        await app.aclose()


async def test_verify_page_lists_problems(db: tuple[Path, SqliteStore], app: InspectorApp,
                                          client: httpx.AsyncClient) -> None:
    path, _ = db
    async with SqliteStore.open(path) as writer:
        bad = await writer.put(ArtifactKind.OUTPUT, b"original bytes")
    with sqlite3.connect(path) as conn:  # flip the stored bytes behind the store's back
        conn.execute("UPDATE artifacts SET data = ? WHERE id = ?", (b"tampered bytes", bad))
    conn.close()
    first = await client.get("/verify")
    assert first.status_code == 200
    await app.inspector.verify.wait()
    report = (await client.get("/verify")).text
    assert "problem" in report and bad[:12] in report and 'id="verdict"' in report
    progress = (await client.get("/verify/progress")).json()
    assert progress["state"] == "done" and progress["done"] == progress["total"] > 0
    page = await client.get(f"/artifacts/{bad}")
    assert page.status_code == 500 and "checksum" in page.text


# the server process ------------------------------------------------------------------


def test_missing_file_and_busy_port_are_clear_errors(tmp_path: Path) -> None:
    def ui(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "MFM_STORE_DB"}
        return subprocess.run([sys.executable, "-m", "mfm_store.ui", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    missing = ui("--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 3 and "no such file" in missing.stderr
    assert not (tmp_path / "nope.db").exists()
    assert ui().returncode == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = ui("--db", str(_empty_store(tmp_path / "empty.db")),
                  "--port", str(taken.getsockname()[1]))
        assert busy.returncode == 2 and "cannot listen on 127.0.0.1:" in busy.stderr
    assert ui("--db", str(tmp_path)).returncode == 3
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).close()
    assert ui("--db", str(foreign)).returncode == 3


def _empty_store(path: Path) -> Path:
    async def create() -> None:
        async with SqliteStore.open(path):
            pass

    asyncio.run(create())
    return path


def test_open_starts_the_browser_and_ctrl_c_ends_cleanly(tmp_path: Path) -> None:
    db = _empty_store(tmp_path / "runs.db")
    opened = tmp_path / "opened.txt"
    fake = tmp_path / "fake-browser"
    fake.write_text(f"#!/bin/sh\necho \"$1\" > {opened}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with inspector(db, "--open", env={"BROWSER": str(fake)}) as server:
        assert server.proc.stdout is not None
        assert server.proc.stdout.readline().startswith("mfm-store ui: opened ")
        assert opened.read_text().strip() == server.url
        code, out = server.stop()
    assert code == 0 and out.strip() == "mfm-store ui: stopped"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-browser", "opened.txt",
                                                          "runs.db"]


async def test_an_open_run_page_follows_new_events(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    run = RunId.new()
    async with SqliteStore.open(path) as writer, \
            SqliteStore.open(path, read_only=True) as store:
        snap = await writer.put(ArtifactKind.CONTEXT_SNAPSHOT, b"{}")
        await writer.append(run, 0, _envs(run, [RunStarted("op", snap, snap),
                                                StateEntered("m.s.a", 0, snap)]))
        await writer.record_fact(run, "answer", b'{"ok":true}')
        app = create_app(store, allowed_hosts={HOST})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
            before = (await c.get(f"/runs/{run}")).text
            assert '<li class="attempt open"' in before and 'data-head="3"' in before
            assert (await c.get(f"/runs/{run}/head")).json() == {"head": 3}
            # Another process resumes the run: the open attempt turns out to have crashed.
            await writer.append(run, 3, [
                EventEnvelope(run, 4, None, StateEntered("m.s.a", 1, snap)),
                EventEnvelope(run, 5, None, StateCompleted("m.s.a", snap)),
                EventEnvelope(run, 6, None, RunCompleted(RunStatus.COMPLETED, snap))])
            assert (await c.get(f"/runs/{run}/head")).json() == {"head": 6}
            after = (await c.get(f"/runs/{run}")).text
        await app.aclose()
    assert '<li class="attempt crashed"' in after and '<li class="attempt completed"' in after
    assert "reused from the file" in after and "data-live" not in after
    assert '<span class="badge completed">completed</span></h1>' in after


def test_register_adds_the_ui_command() -> None:
    import argparse

    from mfm_store.cli._ui import register, run

    parser = argparse.ArgumentParser(prog="mfm-store")
    register(parser.add_subparsers())
    args = parser.parse_args(["ui", "--db", "runs.db", "--port", "8765", "--open"])
    assert (args.handler, args.db, args.port, args.open_browser) == (run, "runs.db", 8765, True)
    args = parser.parse_args(["ui"])
    assert (args.port, args.open_browser, getattr(args, "db", None)) == (0, False, None)


async def test_the_runs_list_is_read_again_only_when_the_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    first, second = RunId.new(), RunId.new()
    async with SqliteStore.open(path) as writer, \
            SqliteStore.open(path, read_only=True) as store:
        await writer.append(first, 0, _envs(first, [DomainEvent("hello", {})]))
        app = create_app(store, allowed_hosts={HOST}, runs_max_age=0.0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
            assert str(first) in (await c.get("/")).text
            await c.get("/")
            assert not app.inspector.runs.loading  # the file did not change: no new read
            await writer.append(second, 0, _envs(second, [DomainEvent("hello", {})]))
            stale = (await c.get("/")).text  # served at once from the list read before
            assert str(second) not in stale and app.inspector.runs.loading
            await app.inspector.runs.settle()
            fresh = (await c.get("/")).text
            assert str(second) in fresh and str(first) in fresh
            assert not app.inspector.runs.loading
        await app.aclose()
