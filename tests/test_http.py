"""The HTTP transport against a real local server: answers recorded once, replayed offline,
credentials never stored, requests checked against what a fact key recorded."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.http_server import JSON_BODY, TEXT_BODY, LocalServer, big_bytes, big_json

from mfm_store import (
    FactIndex,
    IoCall,
    LiveIo,
    LiveIoEnv,
    ReplayIo,
    RouterLiveIoTransportFactory,
    RunId,
    StoreFactRecorder,
    TransportError,
)
from mfm_store.engine import (
    Duration,
    ExecutionPlan,
    FixedBackoff,
    PlanState,
    RetryPolicy,
    RunConfig,
    start,
)
from mfm_store.errors import IoError, MfmError
from mfm_store.events import RunStatus
from mfm_store.http import (
    BODY_ARTIFACT_KIND,
    CredentialPolicy,
    FactRequestMismatchError,
    Http,
    HttpRateLimitedError,
    HttpRequest,
    HttpResponse,
    HttpTransportFactory,
    answer_artifact_refs,
    idempotency_key,
)
from mfm_store.sqlite import SqliteStore

STATE = "shop.main.fetch"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


@pytest.fixture
async def factory(server: LocalServer) -> AsyncIterator[HttpTransportFactory]:
    async with HttpTransportFactory(base_url=server.url, timeout=5.0) as f:
        yield f


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore.open(tmp_path / "run.db") as s:
        yield s


async def live_http(store: SqliteStore, factory: HttpTransportFactory, run: RunId,
                    attempt: int = 0, **kw: Any) -> Http:
    io = LiveIo(run, STATE, attempt, store, await FactIndex.from_store(store, run),
                StoreFactRecorder(store, run),
                factory.make(LiveIoEnv(store, run, STATE, attempt)))
    return Http(io, **kw)


async def replay_http(store: SqliteStore, run: RunId, **kw: Any) -> Http:
    return Http(ReplayIo(run, STATE, 0, store, await FactIndex.from_store(store, run)), **kw)


async def payload(store: SqliteStore, run: RunId, key: str) -> Any:
    pid = await store.get_fact(run, key)
    assert pid is not None
    return json.loads(await store.get(pid))


def code(exc: pytest.ExceptionInfo[MfmError]) -> str:
    return exc.value.info.code


async def test_json_answer_is_recorded_verbatim_and_parses_the_same_live_and_replayed(
        server: LocalServer, factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    live = await (await live_http(store, factory, run)).get("/json", key="quote")
    assert live.status == 200 and live.is_success
    assert live.json() == {"price": 101.25, "qty": 3, "tiny": 1e-07, "name": "café"}
    recorded = await payload(store, run, "quote")
    assert recorded["body"] == {"text": JSON_BODY.decode(), "encoding": "utf-8"}
    assert recorded["headers"] == {"content-type": "application/json"}
    assert recorded["url"] == f"{server.url}/json"
    assert recorded["request"] == {"method": "GET", "url": "/json", "headers": {},
                                   "body": None}
    again = await (await live_http(store, factory, run, attempt=1)).get("/json", key="quote")
    replayed = await (await replay_http(store, run)).get("/json", key="quote")
    assert server.count("/json") == 1
    assert again == replayed == live
    assert replayed.json() == live.json() and replayed.text == JSON_BODY.decode()


async def test_text_bodies_are_inline_with_their_charset(
        factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    http = await live_http(store, factory, run)
    utf8 = await http.get("/text", key="t1")
    latin = await http.get("/latin1", key="t2")
    assert utf8.text == latin.text == TEXT_BODY
    assert latin.content == TEXT_BODY.encode("latin-1")
    assert (await payload(store, run, "t2"))["body"] == {"text": TEXT_BODY,
                                                         "encoding": "iso-8859-1"}
    replay = await replay_http(store, run)
    assert (await replay.get("/latin1", key="t2")).content == TEXT_BODY.encode("latin-1")


async def test_binary_and_several_mib_bodies_are_artifacts_hashed_and_replayed(
        factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    http = await live_http(store, factory, run)
    small = await http.get("/binary", key="bin", params={"n": 1000})
    big = await http.get("/big", key="big", params={"mib": 6})
    bigjson = await http.get("/bigjson", key="bigjson", params={"mib": 3})
    assert small.content == bytes(i % 256 for i in range(1000))
    assert big.content == big_bytes(6)
    assert bigjson.content == big_json(3) and bigjson.json()[0] == {"x": 1.5, "y": "abcdefghij"}
    for key, data in (("bin", small.content), ("big", big.content),
                      ("bigjson", bigjson.content)):
        body = (await payload(store, run, key))["body"]
        assert body == {"artifact": hashlib.sha256(data).hexdigest(), "size": len(data)}
        assert await store.get(body["artifact"]) == data
        fact = await store.get_fact(run, key)
        assert fact is not None
        assert answer_artifact_refs(await store.get(fact)) == [body["artifact"]]
    await http.get("/json", key="inline")
    inline = await store.get_fact(run, "inline")
    assert inline is not None and answer_artifact_refs(await store.get(inline)) == []
    assert answer_artifact_refs(b'{"body":{"artifact":"x"}}') == []
    replay = await replay_http(store, run)
    assert (await replay.get("/big", key="big", params={"mib": 6})).content == big.content
    assert (await replay.get("/bigjson", key="bigjson", params={"mib": 3})).json() \
        == bigjson.json()


async def test_a_text_body_above_the_inline_limit_goes_to_an_artifact(
        server: LocalServer, store: SqliteStore) -> None:
    run = RunId.new()
    async with HttpTransportFactory(base_url=server.url, inline_limit=8) as f:
        resp = await (await live_http(store, f, run)).get("/text", key="t")
    data = TEXT_BODY.encode()
    assert (await payload(store, run, "t"))["body"] == {
        "artifact": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert resp.text == TEXT_BODY and resp.encoding == "utf-8"
    assert (await (await replay_http(store, run)).get("/text", key="t")).text == TEXT_BODY


async def test_a_body_above_max_body_is_refused_and_nothing_is_stored(
        server: LocalServer, store: SqliteStore) -> None:
    run = RunId.new()
    async with HttpTransportFactory(base_url=server.url, max_body=1024 * 1024,
                                    inline_limit=1024) as f:
        http = await live_http(store, f, run)
        with pytest.raises(IoError) as exc:
            await http.get("/big", key="big", params={"mib": 2})
    assert code(exc) == "http_body_too_large" and "max_body" in str(exc.value)
    assert not exc.value.info.retryable
    assert await store.facts(run) == {}


async def test_redirects_are_followed_and_the_final_url_recorded(
        server: LocalServer, factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    http = await live_http(store, factory, run)
    resp = await http.get("/redirect", key="r", params={"to": "/text"})
    assert resp.url == f"{server.url}/text" and resp.text == TEXT_BODY
    assert (await payload(store, run, "r"))["request"]["url"] == "/redirect?to=%2Ftext"
    with pytest.raises(TransportError) as exc:
        await http.get("/redirect-loop", key="loop")
    assert code(exc) == "io_transport" and not exc.value.info.retryable
    async with HttpTransportFactory(base_url=server.url, follow_redirects=False) as f:
        raw = await (await live_http(store, f, run)).get("/redirect", key="r2")
    assert raw.status == 302 and raw.headers["location"] == "/json"


async def test_timeouts_and_refused_connections_are_retryable_transport_errors(
        server: LocalServer, store: SqliteStore) -> None:
    run = RunId.new()
    async with HttpTransportFactory(base_url=server.url, timeout=0.3) as f:
        with pytest.raises(TransportError) as exc:
            await (await live_http(store, f, run)).get("/slow", key="slow")
    assert code(exc) == "io_transport" and exc.value.info.retryable
    assert "timed out" in str(exc.value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nobody listens there
    async with HttpTransportFactory(base_url=f"http://127.0.0.1:{port}") as f:
        with pytest.raises(TransportError) as exc:
            await (await live_http(store, f, run)).get("/json", key="refused")
    assert exc.value.info.retryable and "ConnectError" in str(exc.value)
    assert await store.facts(run) == {}


async def test_429_and_503_with_retry_after_raise_rate_limited_with_the_delay(
        factory: HttpTransportFactory, store: SqliteStore) -> None:
    http = await live_http(store, factory, RunId.new())
    with pytest.raises(HttpRateLimitedError) as exc:
        await http.get("/limited", key="l", params={"id": "a", "n": 1})
    assert code(exc) == "io_rate_limited" and exc.value.info.retryable
    assert exc.value.retry_after == 1.0 and exc.value.info.details == {"retry_after_ms": 1000}
    with pytest.raises(HttpRateLimitedError) as exc:
        await http.get("/busy", key="b")
    assert exc.value.retry_after == 2.0
    assert (await http.get("/limited", key="l", params={"id": "a", "n": 1})).json() \
        == {"ok": True, "after": 1}


async def test_the_engine_retries_a_rate_limited_state_and_records_one_answer(
        server: LocalServer, factory: HttpTransportFactory, store: SqliteStore) -> None:
    async def fetch(ctx: Any, io: Any, rec: Any) -> None:
        resp = await Http(io).get("/limited", key="l", params={"id": "e", "n": 2})
        ctx["after"] = resp.json()["after"]

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    plan = ExecutionPlan("shop", [PlanState(STATE, fetch)])
    config = RunConfig(retry_policy=RetryPolicy(3, FixedBackoff(Duration(0, 1000))))
    result = await start(store, plan, {}, config=config, transports=factory, sleep=sleep)
    assert result.status is RunStatus.COMPLETED and result.final_context == {"after": 2}
    assert server.count("/limited") == 3 and len(await store.facts(result.run_id)) == 1
    assert slept == [1.0, 1.0]  # Retry-After: 1 outweighs the 1 ms backoff


async def test_5xx_is_retryable_and_4xx_is_an_answer_both_configurable(
        server: LocalServer, factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    http = await live_http(store, factory, run)
    with pytest.raises(TransportError) as exc:
        await http.get("/fail", key="f")
    assert code(exc) == "http_server_error" and exc.value.info.retryable
    missing = await http.get("/missing", key="m")
    assert missing.status == 404 and missing.json() == {"error": "not here", "score": 0.5}
    async with HttpTransportFactory(base_url=server.url, retry_5xx=False,
                                    record_4xx=False) as f:
        other = await live_http(store, f, run)
        assert (await other.get("/fail", key="f")).status == 500
        with pytest.raises(TransportError) as exc:
            await other.get("/missing", key="m2")
    assert code(exc) == "http_client_error" and not exc.value.info.retryable


SECRETS = ("Bearer tok-a8f3c2e1", "sess-77e2b9", "hdr-key-5d4c3b", "q-key-19af07",
           "q-tok-6b2e90", "factory-cred-3e8d1a", "cookie-value-7c1d9e", "response-key-4b8a2f",
           "userpass-0c9d")


async def test_credentials_never_reach_the_database_file(
        server: LocalServer, tmp_path: Path) -> None:
    db = tmp_path / "secrets.db"
    run = RunId.new()
    async with SqliteStore.open(db) as store, HttpTransportFactory(
            base_url=server.url, headers={"X-Auth-Token": "factory-cred-3e8d1a"}) as f:
        http = await live_http(store, f, run)
        resp = await http.post(
            "/orders", key="order", json={"qty": 3},
            headers={"Authorization": "Bearer tok-a8f3c2e1", "Cookie": "sid=sess-77e2b9",
                     "X-Api-Key": "hdr-key-5d4c3b", "Accept": "application/json"},
            params={"api_key": "q-key-19af07", "token": "q-tok-6b2e90", "page": 2})
        cookies = await http.get(f"http://user:userpass-0c9d@{server.url[7:]}/cookies",
                                 key="cookies")
        wal = (tmp_path / "secrets.db-wal").read_bytes()
        recorded = await payload(store, run, "order")
    seen = server.requests[0]
    assert seen["headers"]["authorization"] == "Bearer tok-a8f3c2e1"  # sent, not stored
    assert seen["query"] == {"api_key": "q-key-19af07", "token": "q-tok-6b2e90", "page": "2"}
    assert resp.json()["key"] == idempotency_key(run, "order")
    assert recorded["request"]["headers"] == {"accept": "application/json",
                                              "content-type": "application/json"}
    assert recorded["request"]["url"] == "/orders?page=2"
    assert cookies.headers == {"content-type": "application/json", "etag": '"v1"'}
    assert "userpass" not in cookies.url
    files = db.read_bytes() + wal
    assert len(wal) > 0
    for secret in SECRETS:
        assert secret.encode() not in files, secret


async def test_a_secret_in_the_body_is_refused_and_the_error_says_how_to_fetch_tokens(
        factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    http = await live_http(store, factory, run)
    with pytest.raises(IoError) as exc:
        await http.post("/token", key="token")
    assert code(exc) == "secrets_detected" and "without fact_key" in str(exc.value)
    assert "a secret is in its body" in str(exc.value) and "tok-1234" not in str(exc.value)
    unrecorded = await http.post("/token")
    assert unrecorded.json()["access_token"] == "tok-1234"
    assert unrecorded.payload_id is None and await store.facts(run) == {}
    with pytest.raises(IoError) as exc:
        await http.get("/echo/password-reset", key="reset")
    assert code(exc) == "secrets_detected" and "in its url and request" in str(exc.value)


async def test_a_changed_request_under_a_bound_key_is_a_mismatch_live_and_in_replay(
        server: LocalServer, factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    first = await live_http(store, factory, run)
    await first.get("/echo", key="k", params={"x": 1})
    await first.post("/echo", key="p", json={"qty": 3})
    resumed = await live_http(store, factory, run, attempt=1)
    with pytest.raises(FactRequestMismatchError) as exc:
        await resumed.get("/echo", key="k", params={"x": 2})
    assert code(exc) == "fact_request_mismatch" and exc.value.key == "k"
    assert exc.value.differences == ['url: recorded "/echo?x=1", now "/echo?x=2"']
    assert "'k'" in str(exc.value)
    with pytest.raises(FactRequestMismatchError) as exc:
        await resumed.post("/echo", key="p", json={"qty": 4})
    assert [d.split(":")[0] for d in exc.value.differences] == ["body"]
    replay = await replay_http(store, run)
    with pytest.raises(FactRequestMismatchError) as exc:
        await replay.request("PUT", "/echo", key="k", params={"x": 1})
    assert exc.value.differences[0].startswith('method: recorded "GET", now "PUT"')
    assert (await replay.get("/echo", key="k", params={"x": 1})).json()["query"] == {"x": "1"}
    assert server.count("/echo") == 2


async def test_idempotency_key_only_on_recorded_unsafe_methods(
        factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    http = await live_http(store, factory, run)
    assert (await http.post("/echo", key="a")).json()["idempotency_key"] \
        == idempotency_key(run, "a")
    assert (await http.request("DELETE", "/echo", key="d")).json()["idempotency_key"] \
        == idempotency_key(run, "d")
    assert (await http.get("/echo", key="g")).json()["idempotency_key"] is None
    assert (await http.post("/echo")).json()["idempotency_key"] is None
    own = await http.post("/echo", key="own", headers={"Idempotency-Key": "mine"})
    assert own.json()["idempotency_key"] == "mine"
    assert idempotency_key(run, "a") != idempotency_key(RunId.new(), "a")


async def test_factory_headers_go_with_every_call_and_a_call_header_wins(
        server: LocalServer, store: SqliteStore) -> None:
    async with HttpTransportFactory(base_url=server.url, timeout=2.5,
                                    headers={"Accept": "text/plain", "X-Client": "a"}) as f:
        http = await live_http(store, f, RunId.new())
        await http.get("/echo", key="e", headers={"accept": "application/json"})
    sent = server.requests[0]["header_list"]
    assert [v for k, v in sent if k == "accept"] == ["application/json"]
    assert ("x-client", "a") in sent


async def test_raw_calls_shortcuts_and_routing(
        server: LocalServer, factory: HttpTransportFactory, store: SqliteStore) -> None:
    class Other:
        namespace_group = "other"

        def make(self, env: LiveIoEnv) -> Any:
            return self

        async def call(self, call: IoCall) -> Any:
            raise AssertionError("not this one")

    run = RunId.new()
    router = RouterLiveIoTransportFactory([factory, Other()])
    io = LiveIo(run, STATE, 0, store, FactIndex(), StoreFactRecorder(store, run),
                router.make(LiveIoEnv(store, run, STATE, 0)))
    got = await io.call(IoCall("http.get", {"url": "/text"}, "raw"))
    resp = await HttpResponse.from_answer(got.response, store, got.recorded_payload_id)
    assert resp.text == TEXT_BODY and resp.payload_id == await store.get_fact(run, "raw")
    posted = await io.call(IoCall("http.post", {"url": "/echo", "body_b64":
                                                base64.b64encode(b"\x00\x01").decode()}, "b"))
    assert json.loads(posted.response["body"]["text"])["body"] == "\x00\x01"
    with pytest.raises(IoError) as exc:
        await io.call(IoCall("http.get", {"url": "/json", "method": "POST"}, "bad"))
    assert code(exc) == "http_request_invalid"
    with pytest.raises(IoError) as exc:
        await io.call(IoCall("http.fetch", {"url": "/json"}, "bad"))
    assert code(exc) == "http_request_invalid"
    assert server.count("/json") == 0


@pytest.mark.parametrize("request_, message", [
    ({"url": "/json", "json": {}, "text": ""}, "at most one"),
    ({"url": ""}, "url"),
    ({"url": "/json", "headers": {"a": 1}}, "headers"),
    ({"url": "/json", "params": {"a": 1.5}}, "parameter"),
    ({"url": "/json", "body_b64": "***"}, "base64"),
    ({"url": "/json", "extra": 1}, "unknown field"),
])
async def test_malformed_requests_are_refused_before_anything_is_sent(
        server: LocalServer, factory: HttpTransportFactory, store: SqliteStore,
        request_: dict[str, Any], message: str) -> None:
    run = RunId.new()
    io = LiveIo(run, STATE, 0, store, FactIndex(), StoreFactRecorder(store, run),
                factory.make(LiveIoEnv(store, run, STATE, 0)))
    with pytest.raises(IoError) as exc:
        await io.call(IoCall("http.request", request_, "k"))
    assert code(exc) == "http_request_invalid" and message in str(exc.value)
    assert server.requests == []


async def test_custom_credential_lists_and_recorded_headers(
        server: LocalServer, store: SqliteStore) -> None:
    policy = CredentialPolicy(params={"page"}, recorded_headers=["content-type", "etag",
                                                                 "x-api-key"])
    run = RunId.new()
    async with HttpTransportFactory(base_url=server.url, policy=policy) as f:
        http = await live_http(store, f, run, policy=policy)
        resp = await http.get("/cookies", key="c", params={"page": 3, "q": "x"})
        assert resp.request["url"] == "/cookies?q=x"
        assert resp.headers == {"content-type": "application/json", "etag": '"v1"'}
        default = await live_http(store, f, run)  # another policy: another fingerprint
        with pytest.raises(FactRequestMismatchError):
            await default.get("/cookies", key="c", params={"page": 3, "q": "x"})


async def test_an_artifact_body_needs_its_store_and_is_checked(
        factory: HttpTransportFactory, store: SqliteStore) -> None:
    run = RunId.new()
    await (await live_http(store, factory, run)).get("/binary", key="bin")
    answer = await payload(store, run, "bin")
    with pytest.raises(IoError) as exc:
        await HttpResponse.from_answer(answer, None)
    assert code(exc) == "http_answer_invalid" and "artifact" in str(exc.value)
    answer["body"]["size"] += 1
    with pytest.raises(IoError) as exc:
        await HttpResponse.from_answer(answer, store)
    assert "does not match" in str(exc.value)
    assert BODY_ARTIFACT_KIND.to_json() == {"Other": "HttpBody"}


async def test_typed_request_round_trip() -> None:
    req = HttpRequest(method="post", url="/x", headers={"A": "b"}, params={"p": [1, 2]},
                      content=b"\xff")
    assert req.to_json() == {"method": "POST", "url": "/x", "headers": {"A": "b"},
                             "params": {"p": [1, 2]}, "body_b64": "/w=="}
