"""The numbered SQL files of a backend (``schema/`` for SQLite, ``schema/postgres/``), found in
the installed package (``mfm_store/_schema``) or beside it in a source checkout."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import StorageError

_MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql\Z")


def _schema_dir(subdir: str) -> Path:
    package = Path(__file__).resolve().parent
    for candidate in (package / "_schema" / subdir, package.parent / "schema" / subdir):
        if candidate.is_dir():
            return candidate
    raise StorageError(f"mfm_store schema files {subdir!r} not found next to {package}")


def migrations(subdir: str = "") -> list[tuple[int, str]]:
    """``(version, sql)`` for every numbered file of ``schema/<subdir>``, ascending; versions
    must be 1, 2, 3, ..."""
    found = []
    for path in _schema_dir(subdir).iterdir():
        m = _MIGRATION_NAME.match(path.name)
        if m:
            found.append((int(m.group(1)), path.read_text(encoding="utf-8")))
    found.sort()
    if [v for v, _ in found] != list(range(1, len(found) + 1)):
        raise StorageError(f"schema files are not numbered 1..n: {[v for v, _ in found]}")
    return found
