"""The PostgreSQL store (extra ``postgres``: psycopg 3 and psycopg_pool)."""

from .store import Durability, PostgresStore

__all__ = ["Durability", "PostgresStore"]
