"""Row checksums shared by every backend (README, "Schema"): xxh3-64 as signed integers.

PostgreSQL stores the same checksums as SQLite, so a row copied between them keeps its sum.
The definitions still live in :mod:`mfm_store.sqlite._checksums` (which also registers them as
SQL functions on a SQLite connection); this neutral name is what other backends import, so
that moving the definitions here later changes no backend.
"""

from __future__ import annotations

from .sqlite._checksums import artifact_sum, binding_sum, event_sum, run_sum

__all__ = ["artifact_sum", "binding_sum", "event_sum", "run_sum"]
