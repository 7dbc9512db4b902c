"""Declared references (``refs=``, the ``fact_recorded`` event's ``meta.refs``): an HTTP body
artifact lives and travels with its fact; a fact naming an absent artifact is refused."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.http_server import LocalServer, big_bytes

from mfm_store import RunId, replay_store
from mfm_store.canonical import artifact_id_for_bytes
from mfm_store.engine import ExecutionPlan, PlanState, RunConfig, fork, resume, start
from mfm_store.errors import MfmError
from mfm_store.events import DomainEvent, EventEnvelope, RunStatus
from mfm_store.http import BODY_ARTIFACT_KIND, Http, HttpTransportFactory
from mfm_store.ids import ArtifactId
from mfm_store.sqlite import SqliteStore
from mfm_store.stores import ArtifactKind, Store
from mfm_store.sync import sync
from mfm_store.transfer import export_jsonl, import_jsonl

ABSENT = ArtifactId(hashlib.sha256(b"not stored anywhere").hexdigest())


def code(exc: pytest.ExceptionInfo[Any]) -> str:
    assert isinstance(exc.value, MfmError)
    return exc.value.info.code


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


async def fetch_big(ctx: Any, io: Any, rec: Any) -> None:
    resp = await Http(io).get("/big", key="big", params={"mib": 1})
    ctx["sha"] = hashlib.sha256(resp.content).hexdigest()


PLAN = ExecutionPlan("shop", [PlanState("shop.main.fetch", fetch_big)])


async def test_a_fact_naming_an_absent_artifact_is_refused_and_nothing_written(
        store: Store) -> None:
    run = RunId.new()
    body = await store.put(ArtifactKind.other("HttpBody"), b"\x00body")
    pid = await store.put(ArtifactKind.FACT_PAYLOAD, b'{"b":2}')
    data = b'{"a":1}'
    with pytest.raises(MfmError) as exc:
        await store.record_fact(run, "k", data, refs=[body, ABSENT])
    assert code(exc) == "artifact_not_found" and ABSENT in str(exc.value)
    with pytest.raises(MfmError) as exc:
        await store.bind_fact(run, "k", pid, refs=[ABSENT])
    assert code(exc) == "artifact_not_found"
    with pytest.raises(MfmError) as exc:
        await store.record_fact(run, "k", data, refs=["not an id"])  # type: ignore[list-item]
    assert code(exc) == "invalid_id"
    assert await store.head_seq(run) == 0 and await store.facts(run) == {}
    assert not await store.exists(artifact_id_for_bytes(data))

    binding = await store.record_fact(run, "k", data, refs=[body, body])
    assert binding.inserted
    (env,) = await store.read_range(run)
    assert isinstance(env.event, DomainEvent) and env.event.payload["meta"] == {"refs": [body]}
    plain = await store.bind_fact(run, "plain", pid)
    (_, env2) = await store.read_range(run)
    assert isinstance(env2.event, DomainEvent) and env2.event.payload["meta"] == {}
    # A bound key answers with its binding, whatever refs come with it; nothing written.
    again = await store.bind_fact(run, "k", pid, refs=[ABSENT])
    assert not again.inserted and again.payload_id == binding.payload_id
    assert await store.head_seq(run) == plain.seq == 2

    def fact(key: str, refs: object) -> list[EventEnvelope]:
        return [EventEnvelope(run, 3, None, DomainEvent(
            "fact_recorded", {"key": key, "payload_id": pid, "meta": {"refs": refs}}))]

    with pytest.raises(MfmError) as exc:
        await store.append(run, 2, fact("k3", [ABSENT]))
    assert code(exc) == "artifact_not_found"
    with pytest.raises(MfmError) as exc:
        await store.append(run, 2, fact("k3", "not a list"))
    assert code(exc) == "invalid_envelopes"
    assert await store.head_seq(run) == 2
    assert await store.append(run, 2, fact("k3", [body])) == 3


async def test_an_http_body_artifact_survives_gc_export_and_push_and_replays(
        server: LocalServer, tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "run.db") as src, HttpTransportFactory(
            base_url=server.url) as http:
        result = await start(src, PLAN, {}, config=RunConfig(), transports=http)
        assert result.status is RunStatus.COMPLETED
        run = result.run_id
        body_id = ArtifactId(hashlib.sha256(big_bytes(1)).hexdigest())
        assert result.final_context == {"sha": body_id}
        events = [env.event for env in await src.read_range(run)]
        metas = [e.payload["meta"] for e in events
                 if isinstance(e, DomainEvent) and e.name == "fact_recorded"]
        assert {"refs": [body_id]} in metas

        report = await src.gc(apply=True, min_age_seconds=0)
        assert body_id not in report.artifacts and await src.exists(body_id)
        assert (await src.verify()).ok
        assert (await replay_store(src, run, PLAN)).identical

        out = io.BytesIO()
        await export_jsonl(src, out, run_id=run)
        assert body_id.encode() in out.getvalue()
        async with SqliteStore.open(tmp_path / "imported.db") as imported:
            out.seek(0)
            await import_jsonl(imported, out)
            assert await imported.get(body_id) == big_bytes(1)
            assert (await replay_store(imported, run, PLAN)).identical

        async with SqliteStore.open(tmp_path / "pushed.db") as pushed:
            await sync(src, pushed, runs=[run])
            assert await pushed.get(body_id) == big_bytes(1)
            assert (await pushed.verify()).ok
    server.stop()
    async with SqliteStore.open(tmp_path / "pushed.db") as pushed:
        assert (await replay_store(pushed, run, PLAN)).identical
    assert server.count("/big") == 1


async def test_a_fork_into_another_store_carries_the_body_artifact(
        server: LocalServer, tmp_path: Path) -> None:
    async def total(ctx: Any, io: Any, rec: Any) -> None:
        ctx["done"] = True

    plan = ExecutionPlan("shop", [PlanState("shop.main.fetch", fetch_big),
                                  PlanState("shop.main.total", total)])
    body_id = ArtifactId(hashlib.sha256(big_bytes(1)).hexdigest())
    async with SqliteStore.open(tmp_path / "src.db") as src, HttpTransportFactory(
            base_url=server.url) as http:
        result = await start(src, plan, {}, transports=http)
        async with SqliteStore.open(tmp_path / "dst.db") as dst:
            forked = await fork(dst, result.run_id, at_state="shop.main.total", plan=plan,
                                source=src)
            assert await dst.get(body_id) == big_bytes(1)
            assert (await dst.verify()).ok
            done = await resume(dst, forked.run_id, plan)
            assert done.final_context == {"sha": body_id, "done": True}


def test_body_artifact_kind_is_an_other_kind() -> None:
    assert BODY_ARTIFACT_KIND.is_other
