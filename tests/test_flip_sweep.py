"""A sampled flip sweep (issue 11 §1): single flipped bytes in every kind of page of a small
real file are either refused at open, reported by verify(), or change no public read.

The full sweep (every byte) is ``python -m benchmarks.flip_sweep``.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.flip_sweep import build_file, offsets_of, page_kinds, sweep


async def test_sampled_flips_are_detected_or_harmless(tmp_path: Path) -> None:
    path = await build_file(tmp_path)
    kinds = page_kinds(path)
    for kind in ("schema", "table", "index", "overflow"):
        assert kinds[kind], f"the file has no {kind} page"
    offsets = offsets_of(path, per_kind=14)
    assert {k for k, _ in offsets} >= {"header", "schema", "table", "index", "overflow"}
    counts, findings = await sweep(path, offsets)
    assert findings == [], "\n".join(findings)
    assert counts["undetected"] == 0
    assert counts["refused"] + counts["reported"] > 0 and counts["harmless"] > 0
