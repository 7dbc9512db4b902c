"""Subprocess for the streaming scenario: stream one run, print time and peak memory as JSON.

Run as ``python -m benchmarks.stream_child {ours|raw} PATH RUN_ID [PAGE_SIZE]``. Peak memory is
the process's peak resident set (``VmHWM``), interpreter and imports included; ``base_rss_mb``
is the resident set just before streaming starts.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from mfm_store.ids import RunId
from mfm_store.sqlite import SqliteStore

from .raw import stream_run


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field in MB (Linux), else ``None``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float:
    # VmHWM is this process image's high-water mark. ru_maxrss is the fallback elsewhere, but
    # on Linux it also counts the parent's memory image inherited through fork before exec.
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _psutil_rss_mb() -> float | None:
    """Current resident set via psutil where ``/proc`` is missing (psutil is optional)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    rss: int = psutil.Process().memory_info().rss
    return rss / (1 << 20)


async def _ours(path: Path, run_id: str, page_size: int) -> int:
    count = 0
    async with SqliteStore.open(path, read_only=True) as store:
        async for _env in store.iter_events(RunId.parse(run_id), page_size=page_size):
            count += 1
    return count


def main(argv: list[str]) -> int:
    impl, path, run_id = argv[0], Path(argv[1]), argv[2]
    page_size = int(argv[3]) if len(argv) > 3 else 1000
    base = _status_mb("VmRSS") or _psutil_rss_mb() or _peak_rss_mb()
    start = time.perf_counter()
    if impl == "ours":
        count = asyncio.run(_ours(path, run_id, page_size))
    else:
        count = sum(1 for _ in stream_run(path, run_id))
    seconds = time.perf_counter() - start
    print(json.dumps({"events": count, "seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
                      "base_rss_mb": base}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
