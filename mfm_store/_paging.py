"""Paged run listing: the argument checks every backend's ``list_runs`` makes.

``list_runs(*, after=None, limit=None, newest_first=False)`` lists runs in creation order
(oldest first; ``newest_first`` reverses it). ``after`` is a run id, normally the last run of
the previous page: the page holds the runs that come after it in that order. Creation order
is stable (a run's place never changes while it exists) and needs no scan of events.
"""

from __future__ import annotations

from . import _rules
from .errors import RunNotFoundError
from .ids import RunId
from .stores import EventStore, iter_runs

__all__ = ["check_list_runs", "match_run", "unknown_after"]


def check_list_runs(after: object, limit: object, newest_first: object
                    ) -> tuple[RunId | None, int | None]:
    """The checked ``(after, limit)`` of a ``list_runs`` call, checked in this order:
    ``limit`` (``None`` or an ``int`` ≥ 1, not a bool: ``invalid_argument``),
    ``newest_first`` (a bool: ``invalid_argument``), ``after`` (``None``, a ``RunId`` or
    its text: ``invalid_id``)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or not 1 <= limit <= _rules.I64_MAX):
        raise _rules.invalid(f"limit must be None or a positive integer, got {limit!r}")
    if not isinstance(newest_first, bool):
        raise _rules.invalid(f"newest_first must be a bool, got {newest_first!r}")
    return (None if after is None else _rules.run_id_of(after)), limit


def unknown_after(after: RunId) -> RunNotFoundError:
    """The error of a ``list_runs(after=...)`` naming a run the store does not hold (never
    created, or pruned since the previous page was read)."""
    return RunNotFoundError(f"list_runs(after=...): run not found: {after}")


async def match_run(store: EventStore, text: str) -> tuple[RunId | None, int]:
    """``(run, count)`` for a run id or a prefix of one (lowercase, as ids are written):
    ``(that run, 1)`` if ``text`` is the id of a run, else the first run (creation order)
    whose id starts with ``text`` and how many do; ``(None, 0)`` if none. A full id is one
    lookup; a prefix reads the runs a page at a time, so memory holds one page."""
    try:
        exact = RunId.parse(text) if len(text) == 36 else None
    except ValueError:
        exact = None
    if exact is not None and str(exact) == text and await store.head_seq(exact) > 0:
        return exact, 1
    first: RunId | None = None
    count = 0
    async for summary in iter_runs(store):
        rid = str(summary.run_id)
        if rid == text:
            return summary.run_id, 1
        if rid.startswith(text):
            count += 1
            if first is None:
                first = summary.run_id
    return first, count
