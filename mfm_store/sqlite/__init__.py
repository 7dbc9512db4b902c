"""The SQLite store: one file holding events, fact bindings and artifacts."""

from ._verify import Problem, VerifyReport
from .store import Durability, GcReport, SqliteStore

__all__ = ["Durability", "GcReport", "Problem", "SqliteStore", "VerifyReport"]
