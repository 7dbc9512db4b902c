"""Shared fixtures. ``BACKENDS`` lists every store the contract suite runs against."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mfm_store import MemoryStore, Store
from mfm_store.sqlite import SqliteStore

VECTORS = Path(__file__).parent / "vectors"


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


async def _memory(tmp_path: Path) -> Store:
    return MemoryStore()


async def _sqlite(tmp_path: Path) -> Store:
    return await SqliteStore.open(tmp_path / "store.db")


BACKENDS: dict[str, Callable[[Path], Awaitable[Store]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = await BACKENDS[request.param](tmp_path)
    try:
        yield s
    finally:
        await s.close()
