"""Property: MemoryStore and SqliteStore answer every sequence of operations identically."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from helpers.equivalence import OPS, apply
from hypothesis import HealthCheck, given, settings

from mfm_store import MemoryStore
from mfm_store.sqlite import SqliteStore


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_memory_and_sqlite_agree(ops: list[tuple[Any, ...]]) -> None:
    async def both() -> tuple[list[Any], list[Any]]:
        async with MemoryStore() as memory:
            expected = await apply(memory, ops)
        with tempfile.TemporaryDirectory() as folder:
            async with SqliteStore.open(Path(folder) / "s.db", durability="normal") as sqlite:
                got = await apply(sqlite, ops)
        return expected, got

    expected, got = asyncio.run(both())
    assert got == expected
