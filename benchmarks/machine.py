"""A description of the machine and software the figures were taken on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["describe", "load_average"]

_LIBRARIES = ("mfm_store", "aiosqlite", "cbor2", "xxhash", "attrs", "eventsourcing", "dbos",
              "sqlalchemy", "matplotlib", "psutil")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _filesystem(path: Path) -> dict[str, str]:
    """Device and type of the mount holding ``path`` (longest matching mount point)."""
    best = ("", "?", "?")
    target = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[0]):
                best = (mount, device, fstype)
    except OSError:
        pass
    return {"path": target, "mount": best[0], "device": best[1], "type": best[2]}


def _git_commit() -> str | None:
    try:
        repo = Path(__file__).resolve().parent.parent
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo,
                              capture_output=True, text=True, timeout=5, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mfm_store", "schema"],
                               cwd=repo, capture_output=True, text=True, timeout=5).stdout
        return head.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe(workdir: Path) -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "sqlite": sqlite3.sqlite_version,
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "filesystem": _filesystem(workdir),
        "git_commit": _git_commit(),
        "durability": {
            "full": "journal_mode=WAL, synchronous=FULL (fsync per commit; survives power loss)",
            "normal": "journal_mode=WAL, synchronous=NORMAL (survives a process crash)",
        },
    }
