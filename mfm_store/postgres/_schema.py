"""Recognising, creating and migrating an mfm_store schema in a PostgreSQL database.

The numbered SQL files of ``schema/postgres/`` are the source of truth (a wheel ships them as
``mfm_store._schema.postgres``). They are applied in one transaction under an advisory lock
keyed by the schema name, so several processes opening a new database at once are safe; the
table ``mfm_meta`` records the application and the version.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from .. import _migrations
from ..errors import CODE_NOT_A_DATABASE, CODE_SCHEMA_TOO_NEW, CODE_STORE_NOT_FOUND, StorageError

APPLICATION = "mfm_store"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")

STATE = (
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(s)s),"
    " (SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
    "  WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'v', 'p', 'm', 'f')),"
    " EXISTS (SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
    "  WHERE n.nspname = %(s)s AND c.relname = 'mfm_meta')"
)
LOCK = "SELECT pg_advisory_xact_lock(hashtext('mfm_store schema ' || %s))"


def check_schema_name(name: str) -> str:
    """Return ``name`` if it is a plain lowercase identifier (``[a-z_][a-z0-9_]*``, at most 63
    characters, not ``pg_*``), else raise ``ValueError``."""
    if not isinstance(name, str) or not _SCHEMA_NAME.match(name) or name.startswith("pg_"):
        raise ValueError(f"invalid schema name: {name!r} (expected [a-z_][a-z0-9_]*, "
                         "at most 63 characters, not pg_*)")
    return name


def migrations() -> list[tuple[int, str]]:
    """``(version, sql)`` for every numbered file of this backend, ascending."""
    return _migrations.migrations("postgres")


LATEST_VERSION = len(migrations())


async def _version(conn: psycopg.AsyncConnection[tuple[object, ...]], schema: str,
                   where: str) -> tuple[bool, int | None]:
    """Whether the schema exists, and its version (None if absent or empty); raises if it
    is not ours or too new."""
    cur = await conn.execute(STATE, {"s": schema})
    row = await cur.fetchone()
    assert row is not None
    exists, relations, has_meta = row
    if not exists or relations == 0:
        return bool(exists), None
    if not has_meta:
        raise StorageError(f"{where}: schema {schema!r} is not an mfm_store schema "
                           "(it has tables but no mfm_meta)", code=CODE_NOT_A_DATABASE)
    cur = await conn.execute(sql.SQL("SELECT application, schema_version FROM {}.mfm_meta")
                             .format(sql.Identifier(schema)))
    rows = await cur.fetchall()
    if len(rows) != 1 or rows[0][0] != APPLICATION or not isinstance(rows[0][1], int):
        raise StorageError(f"{where}: schema {schema!r} is not an mfm_store schema "
                           "(unexpected mfm_meta)", code=CODE_NOT_A_DATABASE)
    version = rows[0][1]
    if version > LATEST_VERSION:
        raise StorageError(
            f"{where}: schema {schema!r} has version {version}, newer than this mfm_store "
            f"supports ({LATEST_VERSION}); upgrade mfm_store to open it",
            code=CODE_SCHEMA_TOO_NEW)
    return True, version


async def check_and_migrate(conn: psycopg.AsyncConnection[tuple[object, ...]], schema: str,
                            where: str, *, read_only: bool) -> int:
    """Refuse foreign or newer schemas; create or migrate to the latest version.

    ``conn`` is in autocommit mode with ``search_path`` set to ``schema``. An up-to-date
    schema is only read (a role without CREATE rights can open it). Read-only never writes:
    an absent or older schema is refused.
    """
    _exists, version = await _version(conn, schema, where)
    if version == LATEST_VERSION:
        return version
    if read_only:
        if version is None:
            raise StorageError(f"{where}: no mfm_store schema {schema!r} in this database",
                               code=CODE_STORE_NOT_FOUND)
        raise StorageError(f"{where}: schema {schema!r} has version {version}, needs "
                           f"migrating to {LATEST_VERSION}; open it once without read_only",
                           code=CODE_SCHEMA_TOO_NEW)
    async with conn.transaction():
        await conn.execute(LOCK, (schema,))
        # Another process may have created or migrated it while we waited for the lock.
        exists, version = await _version(conn, schema, where)
        if version == LATEST_VERSION:
            return version
        if not exists:
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                               .format(sql.Identifier(schema)))
        for number, script in migrations():
            if number > (version or 0):
                await conn.execute(script.encode())
        await conn.execute("DELETE FROM mfm_meta")
        await conn.execute("INSERT INTO mfm_meta (application, schema_version) VALUES (%s, %s)",
                           (APPLICATION, LATEST_VERSION))
    return LATEST_VERSION
