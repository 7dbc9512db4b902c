"""The SQLite store: one file holding events, fact bindings and artifacts."""

from ._gc import GcReport
from ._verify import Problem, VerifyReport
from .store import Durability, SqliteStore

__all__ = ["Durability", "GcReport", "Problem", "SqliteStore", "VerifyReport"]
