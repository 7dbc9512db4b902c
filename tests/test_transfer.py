"""Export / import as JSON Lines (mfm_store.transfer): round trips, idempotence, refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mfm_store import (
    ArtifactKind,
    DomainEvent,
    ErrorCategory,
    ErrorInfo,
    Event,
    EventEnvelope,
    MemoryStore,
    RunCompleted,
    RunId,
    RunStarted,
    RunStatus,
    StateCompleted,
    StateEntered,
    StateError,
    StateFailed,
    StateId,
    canonical_json_bytes,
)
from mfm_store.errors import NotFoundError
from mfm_store.sqlite import SqliteStore
from mfm_store.transfer import (
    CODE_EXPORT_MALFORMED,
    CODE_IMPORT_DIVERGED,
    TransferError,
    export_jsonl,
    import_jsonl,
)

S1 = "machine.main.s1"


async def _run(store: SqliteStore | MemoryStore, *, ts: int | None = None,
               extra_payload: object = None) -> RunId:
    """A run with every kind of event, a fact, floats and non-ASCII text in payloads."""
    run = RunId.new()
    manifest = await store.put(ArtifactKind.MANIFEST, canonical_json_bytes({"op": "op"}))
    initial = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b"{}")
    after = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, canonical_json_bytes({"n": 1}))
    blob = await store.put(ArtifactKind.other("blob"), b"\x00\xffraw bytes")
    error = StateError(StateId(S1), ErrorInfo("flaky", ErrorCategory.RPC, True, "flaky",
                                     {"try": 1, "ratio": 0.25}))
    events: list[Event] = [
        RunStarted("op", manifest, initial),
        StateEntered(S1, 0, initial),
        StateFailed(S1, error, None),
        StateEntered(S1, 1, initial),
        DomainEvent("note", {"text": "héllo ✓", "pi": 3.14159, "big": 2**63, "neg": -1.5e-300,
                             "extra": extra_payload}, blob),
    ]
    envs = [EventEnvelope(run, i + 1, None if ts is None else ts + i, e)
            for i, e in enumerate(events)]
    head = await store.append(run, 0, envs)
    payload = await store.put(ArtifactKind.FACT_PAYLOAD, canonical_json_bytes({"price": 42}))
    head = (await store.bind_fact(run, "http:get|/price", payload)).seq
    tail: list[Event] = [StateCompleted(S1, after), RunCompleted(RunStatus.COMPLETED, after)]
    await store.append(run, head, [EventEnvelope(run, head + i + 1, None, e)
                                   for i, e in enumerate(tail)])
    return run


async def _export(store: SqliteStore, run: RunId | None = None) -> bytes:
    out = io.BytesIO()
    await export_jsonl(store, out, run_id=run)
    return out.getvalue()


async def test_export_import_export_is_byte_identical(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        await _run(a, ts=1_700_000_000_000)
        await _run(a, extra_payload=[1.0, {"z": None, "a": True}])
        await a.put(ArtifactKind.OUTPUT, b"referenced by nobody")
        first = await _export(a)
    async with SqliteStore.open(tmp_path / "b.db") as b:
        report = await import_jsonl(b, io.BytesIO(first))
        assert (report.runs_added, report.events_added, report.artifacts_added) == (2, 16, 6)
        assert await _export(b) == first
        assert (await b.verify()).ok
    lines = first.decode("utf-8").splitlines()
    assert json.loads(lines[0]) == {"format": "mfm_store.export", "version": 1}
    assert json.loads(lines[-1]) == {"end": {"runs": 2, "events": 16, "artifacts": 6}}
    assert "héllo ✓" in first.decode("utf-8")  # non-ASCII kept as is


async def test_event_lines_are_the_interchange_form(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        run = await _run(a)
        data = await _export(a)
        stored = await a.read_range(run)
    events = [json.loads(line) for line in data.splitlines() if b'"run_id"' in line]
    assert events == [e.to_json() for e in stored]
    assert data.splitlines()[-3].decode() == json.dumps(
        stored[-2].to_json(), separators=(",", ":"), ensure_ascii=False)


async def test_export_of_one_run_holds_only_its_artifacts(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        await _run(a)
        run = await _run(a, extra_payload="second")
        await a.put(ArtifactKind.OUTPUT, b"referenced by nobody")
        one = await _export(a, run)
        refs = {ref for env in await a.read_range(run) for ref in _refs(env)}
    ids = {json.loads(line)["artifact"] for line in one.splitlines() if b'"artifact"' in line}
    # Both runs share the manifest and the snapshots; "blob" and the fact payload too.
    assert ids == refs
    async with SqliteStore.open(tmp_path / "b.db") as b:
        await import_jsonl(b, io.BytesIO(one))
        assert [r.run_id for r in await b.list_runs()] == [run]
        assert (await b.verify()).ok
        assert await _export(b) == one


def _refs(env: EventEnvelope) -> set[str]:
    e = env.event
    found = {getattr(e, name) for name in ("manifest_id", "initial_snapshot_id",
                                           "base_snapshot_id", "context_snapshot_id",
                                           "final_snapshot_id", "payload_ref")
             if getattr(e, name, None) is not None}
    if isinstance(e, DomainEvent) and e.name == "fact_recorded":
        found.add(e.payload["payload_id"])
    return found


async def test_export_of_an_unknown_run_is_not_found(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        await _run(a)
        with pytest.raises(NotFoundError) as info:
            await _export(a, RunId.new())
    assert info.value.info.code == "run_not_found"


async def test_reimport_is_harmless_and_changes_nothing(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        await _run(a)
        data = await _export(a)
    async with SqliteStore.open(tmp_path / "b.db") as b:
        await import_jsonl(b, io.BytesIO(data))
        before = await b.stats()
        again = await import_jsonl(b, io.BytesIO(data))
        assert not again.changed
        assert (again.runs_skipped, again.artifacts_present) == (1, 5)
        after = await b.stats()
        assert {k: v for k, v in after.items() if "bytes" not in k} == \
            {k: v for k, v in before.items() if "bytes" not in k}


async def test_import_extends_a_run_held_as_a_prefix(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        run = await _run(a)
        full = await _export(a)
    lines = full.splitlines(keepends=True)
    events = [i for i, line in enumerate(lines) if b'"run_id"' in line]
    end = {"end": {"runs": 1, "events": 3, "artifacts": events[0] - 1}}
    partial = b"".join(lines[:events[3]]) + json.dumps(end).encode() + b"\n"
    async with SqliteStore.open(tmp_path / "b.db") as b:
        first = await import_jsonl(b, io.BytesIO(partial))
        assert (first.runs_added, first.events_added) == (1, 3)
        second = await import_jsonl(b, io.BytesIO(full))
        assert (second.runs_extended, second.events_added) == (1, 5)
        assert await b.head_seq(run) == 8
        assert list(await b.facts(run)) == ["http:get|/price"]
        assert await _export(b) == full
        assert (await b.verify()).ok


async def test_divergent_run_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        run = await _run(a)
        theirs = await _export(a)
    # The same run id holding something else in "b".
    async with SqliteStore.open(tmp_path / "b.db") as b:
        await b.append(run, 0, [EventEnvelope(run, 1, None, DomainEvent("other", {}))])
        before = await b.stats()
        with pytest.raises(TransferError) as info:
            await import_jsonl(b, io.BytesIO(theirs))
        assert info.value.info.code == CODE_IMPORT_DIVERGED
        assert str(run) in str(info.value) and "seq 1" in str(info.value)
        assert (await b.stats())["artifacts"] == before["artifacts"] == 0
        assert await b.head_seq(run) == 1


WHY = {"truncated": "truncated", "no_header": "no mfm_store export header",
       "bad_hash": "do not hash to its id", "not_json": "not JSON",
       "gap": "seq 4 where 3 was expected", "artifact_after_events": "artifact after",
       "missing_artifact": "neither in the export nor in the store",
       "newer_version": "version 2 is not supported", "wrong_counts": "99 events"}


@pytest.mark.parametrize("damage", sorted(WHY))
async def test_malformed_exports_are_refused_before_any_write(tmp_path: Path,
                                                              damage: str) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        await _run(a)
        lines = (await _export(a)).splitlines(keepends=True)
    first_event = next(i for i, line in enumerate(lines) if b'"run_id"' in line)
    if damage == "truncated":
        lines = lines[:-1]
    elif damage == "no_header":
        lines = lines[1:]
    elif damage == "bad_hash":
        obj = json.loads(lines[1])
        obj["data"] = "AAAA"
        lines[1] = json.dumps(obj).encode() + b"\n"
    elif damage == "not_json":
        lines.insert(first_event, b"{not json\n")
    elif damage == "gap":
        del lines[first_event + 2]
    elif damage == "artifact_after_events":
        lines.insert(first_event + 1, lines.pop(1))
    elif damage == "missing_artifact":
        manifest = json.loads(lines[first_event])["event"]["Kernel"]["RunStarted"]["manifest_id"]
        lines = [line for line in lines if manifest.encode() not in line[:80]]
    elif damage == "newer_version":
        lines[0] = b'{"format":"mfm_store.export","version":2}\n'
    elif damage == "wrong_counts":
        lines[-1] = b'{"end":{"runs":1,"events":99,"artifacts":6}}\n'
    async with SqliteStore.open(tmp_path / "b.db") as b:
        with pytest.raises(TransferError) as info:
            await import_jsonl(b, io.BytesIO(b"".join(lines)))
        assert info.value.info.code == CODE_EXPORT_MALFORMED
        assert WHY[damage] in str(info.value)
        assert (await b.stats())["artifacts"] == 0 and await b.list_runs() == []


async def test_import_into_a_memory_store(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        run = await _run(a)
        data = await _export(a)
        stored = await a.read_range(run)
        facts = await a.facts(run)
    async with MemoryStore() as m:
        report = await import_jsonl(m, io.BytesIO(data))
        assert report.events_added == len(stored)
        assert await m.read_range(run) == stored
        assert await m.facts(run) == facts


async def test_import_needs_a_seekable_stream(tmp_path: Path) -> None:
    class OneWay(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    async with MemoryStore() as m:
        with pytest.raises(ValueError, match="seekable"):
            await import_jsonl(m, OneWay())  # type: ignore[arg-type]


async def test_progress_reports_every_unit(tmp_path: Path) -> None:
    seen: dict[str, list[int]] = {}

    def progress(phase: str, n: int, total: int | None) -> None:
        entry = seen.setdefault(phase, [0, -1])
        entry[0] += n
        if total is not None:
            entry[1] = total

    async with SqliteStore.open(tmp_path / "a.db") as a:
        await _run(a)
        out = io.BytesIO()
        await export_jsonl(a, out, progress=progress)
    async with SqliteStore.open(tmp_path / "b.db") as b:
        await import_jsonl(b, io.BytesIO(out.getvalue()), progress=progress)
    size = len(out.getvalue())
    assert seen["export"] == [8 + 5, 8 + 5]
    assert seen["check"] == [size, size] and seen["import"] == [size, size]


# Wire format (issue 12): event lines are the crate's bytes; import reads both forms.

def _reorder(value: object) -> object:
    """The same JSON with every object's keys in reverse order (the old, unsorted form)."""
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


async def _float_run(store: SqliteStore) -> RunId:
    run = await _run(store, extra_payload={"z": 1e16, "a": [1e-05, 1e-7, -0.0, 2.5]})
    info = ErrorInfo("c", ErrorCategory.RPC, False, "m", {"b": 1e+300, "a": 1.5e-05})
    head = await store.head_seq(run)
    await store.append(run, head, [EventEnvelope(run, head + 1, 7, StateFailed(
        S1, StateError(None, info)))])
    return run


async def test_export_writes_the_crates_bytes(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        run = await _float_run(a)
        data = await _export(a)
        stored = await a.read_range(run)
    lines = [line for line in data.decode("utf-8").splitlines() if '"run_id"' in line]
    assert lines == [env.to_json_text() for env in stored]
    text = "\n".join(lines)
    # fact_recorded: key, meta, payload_id (sorted), not the insertion order key, payload_id, meta
    assert '"payload":{"key":"http:get|/price","meta":{},"payload_id":"' in text
    assert '"extra":{"a":[0.00001,1e-7,-0.0,2.5],"z":1e16}' in text
    assert '"details":{"a":0.000015,"b":1e300}' in text
    assert "e+" not in text and "e-05" not in text


async def test_import_reads_the_old_form_and_exports_the_new(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "a.db") as a:
        await _float_run(a)
        new_form = await _export(a)
    old_lines = []
    for line in new_form.splitlines(keepends=True):
        obj = json.loads(line)
        if "run_id" in obj:
            event = obj["event"]
            if "Domain" in event:
                event["Domain"]["payload"] = _reorder(event["Domain"]["payload"])
            line = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        old_lines.append(line)
    old_form = b"".join(old_lines)
    assert b"1e+16" in old_form and b'"payload_id":' in old_form and old_form != new_form
    async with SqliteStore.open(tmp_path / "b.db") as b:
        await import_jsonl(b, io.BytesIO(old_form))
        assert await _export(b) == new_form


UNREADABLE_LINES = {
    "nan": '{"run_id":"%s","seq":1,"ts_millis":null,"event":{"Domain":{"name":"n",'
           '"payload":NaN,"payload_ref":null}}}',
    "negative_ts": '{"run_id":"%s","seq":1,"ts_millis":-1,"event":{"Domain":{"name":"n",'
                   '"payload":1,"payload_ref":null}}}',
    "ts_beyond_i64": '{"run_id":"%s","seq":1,"ts_millis":9223372036854775808,"event":'
                     '{"Domain":{"name":"n","payload":1,"payload_ref":null}}}',
    "braced_simple_run_id": '{"run_id":"{%h}","seq":1,"ts_millis":null,"event":{"Domain":'
                     '{"name":"n","payload":1,"payload_ref":null}}}',
    "too_deep": '{"run_id":"%s","seq":1,"ts_millis":null,"event":{"Domain":{"name":"n",'
                '"payload":' + "[" * 125 + "]" * 125 + ',"payload_ref":null}}}',
    "100k_deep": '{"run_id":"%s","seq":1,"ts_millis":null,"event":{"Domain":{"name":"n",'
                 '"payload":' + "[" * 100_000 + "]" * 100_000 + ',"payload_ref":null}}}',
    "lone_surrogate": '{"run_id":"%s","seq":1,"ts_millis":null,"event":{"Domain":'
                      '{"name":"n","payload":"\\ud800","payload_ref":null}}}',
    "empty_name": '{"run_id":"%s","seq":1,"ts_millis":null,"event":{"Domain":{"name":"",'
                  '"payload":1,"payload_ref":null}}}',
}


@pytest.mark.parametrize("why", sorted(UNREADABLE_LINES))
async def test_import_refuses_lines_the_crate_cannot_read(tmp_path: Path, why: str) -> None:
    run = RunId.new()
    line = UNREADABLE_LINES[why].replace("%s", str(run)).replace("%h", run.value.hex)
    data = ('{"format":"mfm_store.export","version":1}\n' + line + "\n"
            '{"end":{"runs":1,"events":1,"artifacts":0}}\n').encode()
    async with SqliteStore.open(tmp_path / "b.db") as b:
        with pytest.raises(TransferError) as info:
            await import_jsonl(b, io.BytesIO(data))
        assert info.value.info.code == CODE_EXPORT_MALFORMED
        assert "line 2" in str(info.value)
        assert await b.list_runs() == []
    ok = line.replace('"payload":NaN', '"payload":1')
    if why in ("nan",):  # the same line without the defect imports
        async with MemoryStore() as m:
            await import_jsonl(m, io.BytesIO(data.replace(line.encode(), ok.encode())))
            assert await m.head_seq(run) == 1
