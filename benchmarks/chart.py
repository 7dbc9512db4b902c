"""Throughput against concurrency as a PNG, when matplotlib is installed."""

from __future__ import annotations

import re
from pathlib import Path

from .results import ScenarioResult

__all__ = ["concurrency_chart"]

_CONCURRENT = re.compile(r"(?:ours|live)_c(\d+)\Z")


def _series(result: ScenarioResult, single: str | None) -> list[tuple[int, float, float, float]]:
    """``(tasks, median, min, max)`` for every ``*_cN`` side (and ``single`` as N=1)."""
    points = []
    for side in result.sides:
        m = _CONCURRENT.match(side.name)
        tasks = int(m.group(1)) if m else (1 if side.name == single else None)
        if tasks is not None:
            rate = side.rate
            points.append((tasks, rate.median, rate.low, rate.high))
    return sorted(points)


def concurrency_chart(results: list[ScenarioResult], path: Path) -> Path | None:
    """Plot appends/s (and LiveIo facts/s) against task count; ``None`` if nothing to plot
    or matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    lines = []
    for r in results:
        if r.id == "append_concurrent":
            lines.append(("appends/s (1 event each, full)", _series(r, None)))
        elif r.id == "facts":
            lines.append(("LiveIo facts/s (full)", _series(r, "live_seq")))
    lines = [(label, pts) for label, pts in lines if len(pts) > 1]
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, pts in lines:
        xs = [p[0] for p in pts]
        med = [p[1] for p in pts]
        err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
        ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("concurrent tasks (each on its own run)")
    ax.set_ylabel("operations per second (median, min to max)")
    ax.set_title("mfm_store throughput against concurrency (group commit)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
