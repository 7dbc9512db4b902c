"""What a scenario hands to the report: per-side samples and findings, JSON-ready."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .harness import Finding, Sample, Side, Spread, Stepper, percentile, spread

__all__ = ["ScenarioResult", "SideResult"]


@dataclass
class SideResult:
    name: str
    label: str
    unit: str
    samples: list[Sample]

    @classmethod
    def of(cls, side: Side | Stepper, samples: list[Sample]) -> SideResult:
        return cls(side.name, side.label, side.unit, samples)

    @property
    def rate(self) -> Spread:
        return spread([s.rate for s in self.samples])

    def latency(self, q: float) -> Spread | None:
        """Per-round ``q``-th percentile of per-operation latency (seconds), if recorded."""
        per_round = [percentile(s.latencies, q) for s in self.samples if s.latencies]
        return spread(per_round) if per_round else None

    def extra(self, key: str) -> Spread | None:
        values = [s.extra[key] for s in self.samples if key in s.extra]
        return spread(values) if values else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "label": self.label, "unit": self.unit,
            "rate_per_s": self.rate.to_json(),
            "rounds": [{"ops": s.ops, "seconds": s.seconds, **s.extra} for s in self.samples],
        }
        for q in (50, 99):
            lat = self.latency(q)
            if lat is not None:
                out[f"latency_p{q}_ms"] = {k: v * 1000 if k != "n" else v
                                           for k, v in lat.to_json().items()}
        return out


@dataclass
class ScenarioResult:
    id: str
    title: str
    description: str
    sides: list[SideResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def side(self, name: str) -> SideResult:
        for s in self.sides:
            if s.name == name:
                return s
        raise KeyError(name)

    def add_sides(self, sides: Sequence[Side | Stepper],
                  samples: dict[str, list[Sample]]) -> None:
        self.sides.extend(SideResult.of(s, samples[s.name]) for s in sides)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "description": self.description,
            "seconds": self.seconds, "error": self.error,
            "sides": [s.to_json() for s in self.sides],
            "findings": [
                {"name": f.name, "description": f.description, "unit": f.unit,
                 "values": list(f.values), **f.stats.to_json(),
                 "target": None if f.target is None else str(f.target),
                 "status": f.status}
                for f in self.findings
            ],
            "notes": list(self.notes),
            "skipped": dict(self.skipped),
        }
