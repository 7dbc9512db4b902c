"""What a scenario is, and the helper that turns paired samples into a finding."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..context import Context
from ..harness import TIMES, Finding, Metric, Sample, Target, paired_ratios
from ..results import ScenarioResult

__all__ = ["Scenario", "ratio"]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    run: Callable[[Context], Awaitable[ScenarioResult]]


def ratio(samples: dict[str, list[Sample]], num: str, den: str, description: str,
          target: Target | None = None, metric: Metric = "rate") -> Finding:
    """Per-round ``num / den`` (of rates, or of seconds for ``metric="seconds"``)."""
    values = tuple(paired_ratios(samples[num], samples[den], metric))
    return Finding(f"{num} / {den}", description, values, TIMES, target)
