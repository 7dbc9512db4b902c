"""``open_store(target)``: any store from one string (a path, a PostgreSQL URL, ``memory:``)."""

from __future__ import annotations

import os
import re
from typing import Literal

from ._opening import Opening
from .errors import CODE_STORAGE, StorageError
from .memory import MemoryStore
from .stores import Store

__all__ = ["open_store"]

_PG_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_target(target: str | os.PathLike[str]) -> bool:
    return isinstance(target, str) and target.startswith(_PG_SCHEMES)


# A URL's password (``scheme://user:PASSWORD@``) and a ``password=`` parameter (libpq's
# key=value form or a URL query).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s@/]*@", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s&#]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every URL password and ``password=`` value replaced by ``***``."""
    return _PARAM_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def shown_target(target: str | os.PathLike[str]) -> str:
    """A target for messages and output: a path as given, a URL without its password."""
    text = os.fspath(target)
    return redact(text) if is_postgres_target(text) else text


def split_schema(dsn: str) -> tuple[str, str | None]:
    """A PostgreSQL URL's ``#schema=name`` fragment (not a libpq parameter) split off."""
    base, sep, fragment = dsn.partition("#")
    if not sep:
        return dsn, None
    if not fragment.startswith("schema=") or "&" in fragment:
        raise ValueError("a PostgreSQL URL's fragment must be '#schema=<name>'")
    return base, fragment[len("schema="):]


def open_store(target: str | os.PathLike[str], *, read_only: bool = False,
               durability: Literal["full", "normal"] = "full",
               schema: str | None = None) -> Opening[Store]:
    """Open the store ``target`` names: await it, or use it as ``async with``.

    - ``memory:``: a new, empty ``MemoryStore`` (nothing durable);
    - ``postgresql://...`` or ``postgres://...``: a ``PostgresStore`` (extra ``postgres``);
      the schema is ``schema``, else the URL's ``#schema=name`` fragment, else ``mfm``;
    - anything else: the path of a ``SqliteStore`` file.

    ``read_only`` and ``durability`` are passed to the store (a ``MemoryStore`` refuses
    ``read_only``: there would be nothing to read).
    """
    return Opening(_open(target, read_only, durability, schema))


async def _open(target: str | os.PathLike[str], read_only: bool,
                durability: Literal["full", "normal"], schema: str | None) -> Store:
    if isinstance(target, str) and target == "memory:":
        if read_only:
            raise ValueError("memory: cannot be opened read-only (it starts empty)")
        return MemoryStore()
    if is_postgres_target(target):
        assert isinstance(target, str)
        dsn, from_url = split_schema(target)
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StorageError(
                f"PostgreSQL support is not installed ({exc.name} missing): "
                'pip install "mfm_store[postgres]"', code=CODE_STORAGE) from None
        return await PostgresStore.open(dsn, read_only=read_only, durability=durability,
                                        schema=schema or from_url or "mfm")
    from .sqlite import SqliteStore

    return await SqliteStore.open(target, read_only=read_only, durability=durability)


