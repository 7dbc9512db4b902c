"""Timing, interleaved rounds and statistics.

A *side* is one contestant of a scenario (our store, raw ``sqlite3``, a peer library). Each side
times its own measured section and returns a :class:`Sample`, so that untimed setup (copying a
file, building envelopes) stays outside the clock. The harness runs the sides of a scenario in
interleaved rounds, rotating their order every round, so that drift on a shared machine hits every
side alike; ratios are computed per round (ours in round *r* over the reference in round *r*)
and reported as the median with its spread. Where an operation is one durable commit, a finer
schedule is used: the contestants (*steppers*) take turns one operation at a time, since the
disk's fsync latency drifts within seconds.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

TIMES = "\u00d7"  # the multiplication sign of "0.91x"

__all__ = [
    "TIMES",
    "Finding",
    "Hook",
    "Metric",
    "Sample",
    "Side",
    "Spread",
    "StepFn",
    "Stepper",
    "Stopwatch",
    "Target",
    "Turns",
    "paired_ratios",
    "percentile",
    "run_alternating",
    "run_interleaved",
    "spread",
]


@dataclass(frozen=True)
class Sample:
    """What one side measured in one round: ``ops`` operations in ``seconds``.

    ``latencies`` (seconds, one per operation) are kept only where latency is reported;
    ``extra`` holds other per-round numbers (e.g. ``peak_rss_mb``).
    """

    ops: int
    seconds: float
    latencies: tuple[float, ...] = ()
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else math.inf


RoundFn = Callable[[int], Awaitable[Sample]]


@dataclass(frozen=True)
class Side:
    """One contestant: ``run(round_index)`` performs and times one round.

    ``round_index`` is negative for warm-up rounds (results discarded).
    """

    name: str
    label: str
    unit: str
    run: RoundFn


class Stopwatch:
    """Accumulates the time spent inside ``with sw.timing():`` blocks, per-op if asked."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.latencies: list[float] = []

    @contextmanager
    def timing(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start

    def sample(self, ops: int, *, keep_latencies: bool = False,
               extra: dict[str, float] | None = None) -> Sample:
        lat = tuple(self.latencies) if keep_latencies else ()
        return Sample(ops, self.seconds, lat, dict(extra or {}))


Hook = Callable[[Side], AbstractContextManager[object]]


async def run_interleaved(sides: Sequence[Side], rounds: int, warmup: int = 0,
                          hook: Hook | None = None) -> dict[str, list[Sample]]:
    """Run every side ``rounds`` times, rotating the order each round; return samples by name.

    A garbage collection runs before every measured section, so that one side's garbage is not
    collected on the next side's clock. ``hook(side)``, if given, wraps each measured round
    (the profiler uses it).
    """
    for w in range(warmup):
        for side in sides:
            gc.collect()
            await side.run(-1 - w)
    samples: dict[str, list[Sample]] = {side.name: [] for side in sides}
    n = len(sides)
    for r in range(rounds):
        order = [sides[(r + i) % n] for i in range(n)] if n else []
        for side in order:
            gc.collect()
            with hook(side) if hook else nullcontext():
                samples[side.name].append(await side.run(r))
    return samples


StepFn = Callable[[int], Awaitable[object] | None]


@dataclass(frozen=True)
class Turns:
    """One prepared round of a :class:`Stepper`: ``step(i)`` for ``i`` in ``range(steps)``
    performs a share of the round's ``ops`` operations (returning an awaitable, or None when
    already done); ``latencies``, if given, is filled by the steps (seconds per operation)."""

    steps: int
    step: StepFn
    ops: int
    latencies: list[float] | None = None


@dataclass(frozen=True)
class Stepper:
    """A contestant measured in turns: ``prepare(round_index)`` does the untimed setup of a
    round and returns its :class:`Turns`."""

    name: str
    label: str
    unit: str
    prepare: Callable[[int], Awaitable[Turns]]


async def run_alternating(steppers: Sequence[Stepper], rounds: int, warmup: int = 0,
                          profile: Callable[[Stepper], bool] | None = None,
                          profiler: Any = None) -> dict[str, list[Sample]]:
    """Like :func:`run_interleaved`, but within a round the contestants take turns step by
    step (their order rotating each round), so that drift in fsync latency, which moves within
    seconds on a shared disk, hits them alike. Each step is timed on its own; the steppers of
    one call must prepare the same number of steps.

    With ``profiler``, the steps of steppers for which ``profile`` is true run under it.
    """
    samples: dict[str, list[Sample]] = {s.name: [] for s in steppers}
    n_sides = len(steppers)
    for r in range(-warmup, rounds):
        order = [steppers[(r + i) % n_sides] for i in range(n_sides)]
        prepared = [(side, await side.prepare(r)) for side in order]
        steps = {turns.steps for _, turns in prepared}
        if len(steps) != 1:
            raise ValueError(f"steppers prepared different numbers of steps: {steps}")
        totals = dict.fromkeys((s.name for s in order), 0)
        gc.collect()
        for i in range(steps.pop()):
            for side, turns in prepared:
                watched = profiler is not None and profile is not None and profile(side)
                if watched:
                    profiler.enable()
                start = time.perf_counter_ns()
                pending = turns.step(i)
                if pending is not None:
                    await pending
                totals[side.name] += time.perf_counter_ns() - start
                if watched:
                    profiler.disable()
        if r >= 0:
            for side, turns in prepared:
                samples[side.name].append(Sample(turns.ops, totals[side.name] / 1e9,
                                                 tuple(turns.latencies or ())))
    return samples


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Spread:
    """Median, extremes and quartiles of per-round values."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high,
                "q1": self.q1, "q3": self.q3, "n": self.n}


def spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    return Spread(statistics.median(values), min(values), max(values),
                  percentile(values, 25), percentile(values, 75), len(values))


Metric = Literal["rate", "seconds"]


def paired_ratios(num: Sequence[Sample], den: Sequence[Sample],
                  metric: Metric = "rate") -> list[float]:
    """Per-round ratios ``num[r] / den[r]`` of rates (or of seconds per round)."""
    out = []
    for a, b in zip(num, den, strict=True):
        x, y = (a.rate, b.rate) if metric == "rate" else (a.seconds, b.seconds)
        out.append(x / y if y else math.nan)
    return out


@dataclass(frozen=True)
class Target:
    """A goal from SPEC §9: the measured value must be ``>=`` or ``<=`` ``value``."""

    op: Literal[">=", "<="]
    value: float
    unit: str = TIMES

    def met(self, measured: float) -> bool:
        if math.isnan(measured):
            return False
        return measured >= self.value if self.op == ">=" else measured <= self.value

    def __str__(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:g}{self.unit}"


@dataclass(frozen=True)
class Finding:
    """A reported comparison: per-round values (ratios or a measured quantity) and a target."""

    name: str
    description: str
    values: tuple[float, ...]
    unit: str = TIMES
    target: Target | None = None

    @property
    def stats(self) -> Spread:
        return spread(self.values)

    @property
    def status(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.target.met(self.stats.median) else "MISS"
