"""What every ``open`` returns: a store to await, or to use as ``async with`` (closed on exit)."""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar


class _Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class Opening(Generic[S]):
    """``await Store.open(...)`` gives the store; ``async with Store.open(...) as store``
    closes it on exit."""

    def __init__(self, coro: Coroutine[Any, Any, S]) -> None:
        self._coro = coro
        self._store: S | None = None

    def __await__(self) -> Generator[Any, None, S]:
        return self._coro.__await__()

    async def __aenter__(self) -> S:
        self._store = await self._coro
        return self._store

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._store is not None:
            await self._store.close()
