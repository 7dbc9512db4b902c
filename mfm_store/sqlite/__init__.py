"""The SQLite store: one file holding events, fact bindings and artifacts."""

from .store import Durability, SqliteStore

__all__ = ["Durability", "SqliteStore"]
