"""What every scenario gets: workload sizes, a scratch folder, the peers, an optional profiler."""

from __future__ import annotations

import cProfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .harness import Sample, Side, Stepper, run_alternating, run_interleaved
from .peers import PeerStatus
from .profiles import Profile

__all__ = ["Context", "is_ours"]


def is_ours(side: Side | Stepper) -> bool:
    """Sides named ``ours*`` or ``live*`` run our store; the others are references."""
    return side.name.startswith(("ours", "live"))


@dataclass
class Context:
    profile: Profile
    workdir: Path
    peers: dict[str, PeerStatus]
    use_peers: bool = True
    profiler: cProfile.Profile | None = None
    _counter: int = field(default=0, repr=False)

    def path(self, name: str) -> Path:
        """A fresh file name in the scratch folder."""
        self._counter += 1
        return self.workdir / f"{self._counter:03d}_{name}.db"

    def peer(self, name: str) -> str | None:
        """``None`` if the peer can run, else the reason it is skipped."""
        if not self.use_peers:
            return "peers disabled (--no-peers)"
        status = self.peers[name]
        return None if status.available else status.reason

    async def measure(self, sides: Sequence[Side], rounds: int | None = None,
                      warmup: int | None = None) -> dict[str, list[Sample]]:
        """Interleaved rounds (the profile's count unless given); with ``--cprofile``, our
        sides' measured rounds run under the profiler."""
        return await run_interleaved(
            sides, self.profile.rounds if rounds is None else rounds,
            self.profile.warmup if warmup is None else warmup,
            self._profiling if self.profiler is not None else None)

    async def measure_alternating(self, steppers: Sequence[Stepper]
                                  ) -> dict[str, list[Sample]]:
        """Rounds in which the steppers take turns one operation at a time."""
        return await run_alternating(steppers, self.profile.rounds, self.profile.warmup,
                                     is_ours, self.profiler)

    @contextmanager
    def _profiling(self, side: Side) -> Iterator[None]:
        if self.profiler is None or not is_ours(side):
            yield
            return
        self.profiler.enable()
        try:
            yield
        finally:
            self.profiler.disable()
