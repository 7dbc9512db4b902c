"""Writing the results: ``results.json``, ``report.md`` and a summary table for the terminal."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .harness import Finding, Spread
from .peers import PeerStatus
from .results import ScenarioResult

_DASH = "\u2013"

__all__ = ["build_json", "summary_table", "write_json", "write_markdown"]


def _num(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _range(s: Spread) -> str:
    return f"{_num(s.low)}{_DASH}{_num(s.high)}" if s.n > 1 else "1 round"


def _finding_value(f: Finding) -> str:
    return f"{_num(f.stats.median)}{f.unit}"


def build_json(meta: dict[str, Any], machine: dict[str, Any], peers: dict[str, PeerStatus],
               results: list[ScenarioResult]) -> dict[str, Any]:
    return {
        "meta": meta,
        "machine": machine,
        "peers": {n: {"available": p.available, "version": p.version, "reason": p.reason}
                  for n, p in peers.items()},
        "scenarios": [r.to_json() for r in results],
    }


def _rows(results: list[ScenarioResult]) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for r in results:
        if r.error:
            rows.append((r.id, "error", "-", "-", "-", r.error.splitlines()[-1][:60]))
        for f in r.findings:
            rows.append((r.id, f.name, _finding_value(f), _range(f.stats),
                         str(f.target) if f.target else "-", f.status))
    return rows


def summary_table(results: list[ScenarioResult]) -> str:
    """Plain-text table of every finding, for stdout."""
    head = ("scenario", "comparison", "median", "spread", "target", "status")
    rows = [head, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def _machine_lines(machine: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    fs = machine["filesystem"]
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items() if v)
    return [
        f"- CPU: {machine['cpu_model']}, {machine['cpu_count']} cores; memory "
        f"{machine['memory_gib']} GiB; {machine['os']}",
        f"- Python {machine['python']}, SQLite {machine['sqlite']}; {libs}",
        f"- Files in `{fs['path']}` on {fs['device']} ({fs['type']}, mounted at {fs['mount']})",
        f"- Durability `full`: {machine['durability']['full']}; "
        f"`normal`: {machine['durability']['normal']}",
        f"- Load average before / after: {meta.get('load_before')} / {meta.get('load_after')}",
        f"- Commit {machine.get('git_commit')}; mode `{meta['mode']}`, {meta['rounds']} "
        f"interleaved rounds (+{meta['warmup']} warm-up), {meta['seconds']:.0f} s in all",
    ]


def _scenario_lines(r: ScenarioResult) -> list[str]:
    out = [f"### {r.title} (`{r.id}`)", "", r.description, ""]
    if r.error:
        out += ["**Error:**", "", "```", r.error.strip(), "```", ""]
    if r.sides:
        has_lat = any(s.latency(50) is not None for s in r.sides)
        has_rss = any(s.extra("peak_rss_mb") is not None for s in r.sides)
        head = ["side", "what", "median rate", f"spread (min{_DASH}max)"]
        head += ["p50 ms", "p99 ms"] if has_lat else []
        head += ["peak RSS MB"] if has_rss else []
        rows = []
        for s in r.sides:
            rate = s.rate
            row = [f"`{s.name}`", s.label, f"{_num(rate.median)} {s.unit}/s", _range(rate)]
            if has_lat:
                p50, p99 = s.latency(50), s.latency(99)
                row += [_num(p50.median * 1000) if p50 else "-",
                        _num(p99.median * 1000) if p99 else "-"]
            if has_rss:
                rss = s.extra("peak_rss_mb")
                row += [_num(rss.median) if rss else "-"]
            rows.append(row)
        out += [*_table(head, rows), ""]
    if r.findings:
        rows = [[f"`{f.name}`", f.description, _finding_value(f), _range(f.stats),
                 str(f.target) if f.target else "-", f"**{f.status}**"] for f in r.findings]
        out += [*_table(["comparison", "meaning", "median", "spread", "target", "status"], rows),
                ""]
    out += [f"- {note}" for note in r.notes]
    out += [f"- skipped `{name}`: {why}" for name, why in r.skipped.items()]
    if r.notes or r.skipped:
        out.append("")
    return out


def write_markdown(path: Path, meta: dict[str, Any], machine: dict[str, Any],
                   peers: dict[str, PeerStatus], results: list[ScenarioResult],
                   chart: Path | None) -> None:
    lines = [f"# mfm_store benchmarks ({meta['mode']})", "",
             f"Taken {meta['started']}. Ratios are computed per round (ours and the reference "
             "ran back to back in the same round) and summarised as the median with its "
             f"min{_DASH}max spread. Higher is better unless the target says \u2264.", "",
             "## Targets (SPEC §9)", ""]
    if meta.get("cprofile"):
        lines[-2:-2] = ["**Profiled run** (`--cprofile`): our sides ran under cProfile, which "
                        "slows them several-fold; these ratios are not figures to quote.", ""]
    rows = [[f"`{a}`", f"`{b}`", c, d, e, f"**{g}**"] for a, b, c, d, e, g in _rows(results)]
    lines += [*_table(["scenario", "comparison", "median", "spread", "target", "status"], rows),
              "", "## Machine", "", *_machine_lines(machine, meta), "", "## Peers", ""]
    for name, p in peers.items():
        state = f"{p.version}, used" if p.available else f"skipped: {p.reason}"
        lines.append(f"- {name}: {state}")
    if not meta.get("use_peers", True):
        lines.append("- peers disabled with `--no-peers`")
    lines += ["", "## Scenarios", ""]
    for r in results:
        lines += _scenario_lines(r)
    if chart is not None:
        lines += ["## Throughput against concurrency", "", f"![throughput]({chart.name})", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
