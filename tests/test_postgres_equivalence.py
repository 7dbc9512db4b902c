"""Property: MemoryStore and PostgresStore answer every sequence of operations identically
(the operations and the comparison are those of test_store_equivalence.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from helpers.equivalence import OPS, apply
from hypothesis import HealthCheck, given, settings

from conftest import pg_dsn
from mfm_store import MemoryStore
from mfm_store.postgres import PostgresStore


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_memory_and_postgres_agree(ops: list[tuple[Any, ...]]) -> None:
    dsn = pg_dsn()

    async def both() -> tuple[list[Any], list[Any]]:
        async with MemoryStore() as memory:
            expected = await apply(memory, ops)
        schema = f"t_{uuid.uuid4().hex[:16]}"
        async with PostgresStore.open(dsn, schema=schema, durability="normal",
                                      pool_size=2) as pg:
            got = await apply(pg, ops)
        return expected, got

    expected, got = asyncio.run(both())
    assert got == expected
