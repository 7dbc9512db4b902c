"""Every scenario, in the order they run. Each compares our store with its reference side by
side; see the module of each for what exactly is timed."""

from __future__ import annotations

from . import appends, artifacts, facts, loop_lag, reads
from ._base import Scenario

__all__ = ["SCENARIOS", "Scenario", "select"]

SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (*appends.SCENARIOS, *facts.SCENARIOS, *artifacts.SCENARIOS, *reads.SCENARIOS,
              *loop_lag.SCENARIOS)
}


def select(only: str | None) -> list[Scenario]:
    """The scenarios named in a comma-separated list (all if ``None``), in registry order."""
    if not only:
        return list(SCENARIOS.values())
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; "
                         f"choose from {', '.join(SCENARIOS)}")
    return [s for name, s in SCENARIOS.items() if name in wanted]
