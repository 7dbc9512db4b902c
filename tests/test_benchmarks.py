"""The benchmark harness runs end to end in its smoke mode and writes well-formed reports.

Timings are never asserted: on a shared machine they mean nothing in a test.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_smoke_run_writes_reports(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--no-peers", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scenario" in proc.stdout and "report:" in proc.stdout

    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["meta"]["mode"] == "smoke"
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["sqlite"]
    assert set(data["peers"]) == {"eventsourcing", "dbos"}
    ids = [s["id"] for s in data["scenarios"]]
    assert ids == ["append_seq", "append_concurrent", "append_bulk", "durability", "facts",
                   "artifacts", "cold_load", "stream", "loop_lag"]
    for scenario in data["scenarios"]:
        assert scenario["error"] is None, scenario["error"]
        assert scenario["sides"] and scenario["findings"]
        for side in scenario["sides"]:
            assert side["rounds"] and all(r["ops"] > 0 for r in side["rounds"])
        for finding in scenario["findings"]:
            assert finding["status"] in {"PASS", "MISS", "info"}
            assert finding["median"] > 0
    facts = next(s for s in data["scenarios"] if s["id"] == "facts")
    assert set(facts["skipped"]) == {"eventsourcing", "dbos"}

    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# mfm_store benchmarks (smoke)")
    for heading in ("## Targets (SPEC §9)", "## Machine", "## Peers", "## Scenarios"):
        assert heading in markdown
    assert not list(out.glob(".work-*")), "scratch files left behind"


def test_only_and_unknown_scenarios(tmp_path: Path) -> None:
    bad = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nope",
                          "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "unknown scenario" in bad.stderr

    listing = subprocess.run([sys.executable, "-m", "benchmarks", "--list"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "append_seq" in listing.stdout


def test_peers_are_run_or_reported_skipped(tmp_path: Path) -> None:
    """With the ``bench`` extra the peers' sides run; without it the report says why not."""
    installed = {m for m in ("eventsourcing", "dbos") if importlib.util.find_spec(m)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "facts", "--out",
         str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (facts,) = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["scenarios"]
    sides = {s["name"] for s in facts["sides"]}
    assert ({"es_1", "es_100"} <= sides) == ("eventsourcing" in installed)
    assert ({"dbos_seq", "dbos_c100"} <= sides) == ("dbos" in installed)
    assert set(facts["skipped"]) == {"eventsourcing", "dbos"} - installed
    for peer in facts["skipped"]:
        assert facts["skipped"][peer], f"no reason given for skipping {peer}"
