"""Shared fixtures. ``BACKENDS`` lists every store the contract suite runs against."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import pg_server
from hypothesis import HealthCheck, settings

from mfm_store import MemoryStore, Store
from mfm_store.sqlite import SqliteStore

VECTORS = Path(__file__).parent / "vectors"

# The suite shares two cores with real processes and a PostgreSQL server: time limits per
# example would make property tests fail on load, not on behaviour. Examples stay the same.
settings.register_profile("mfm", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mfm")


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


async def _memory(tmp_path: Path) -> Store:
    return MemoryStore()


async def _sqlite(tmp_path: Path) -> Store:
    return await SqliteStore.open(tmp_path / "store.db")


def pg_dsn() -> str:
    """The session's PostgreSQL server (started on first use); skips the test if there is
    none, unless ``MFM_STORE_REQUIRE_PG=1`` (CI), which makes that a failure."""
    try:
        return pg_server.shared().dsn
    except pg_server.PgUnavailable as exc:
        if os.environ.get("MFM_STORE_REQUIRE_PG") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


async def _postgres(tmp_path: Path) -> Store:
    from mfm_store.postgres import PostgresStore

    # A fresh schema per test: tests are isolated on one server.
    return await PostgresStore.open(pg_dsn(), schema=f"t_{uuid.uuid4().hex[:16]}", pool_size=4)


BACKENDS: dict[str, Callable[[Path], Awaitable[Store]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(scope="session", autouse=True)
def _pg_server_session() -> Iterator[None]:
    """Stops the session's PostgreSQL server (if a test started it) when the session ends."""
    try:
        yield
    finally:
        pg_server.stop_shared()


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = await BACKENDS[request.param](tmp_path)
    try:
        yield s
    finally:
        await s.close()
