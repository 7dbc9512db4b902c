"""``mfm-store fork RUN --at STATE`` (mfm_store._fork_command): prepares the run, prints its id."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.engine import S3
from helpers.fork import FIXED, S4, AskedFactory, failed_run

from mfm_store import RunId, RunStatus
from mfm_store._fork_command import main
from mfm_store.engine import ForkOrigin, fork_origin, resume
from mfm_store.sqlite import SqliteStore


def recorded(path: Path) -> RunId:
    async def go() -> RunId:
        async with SqliteStore.open(path) as store:
            return await failed_run(store)
    return asyncio.run(go())


def finish(path: Path, run_id: str) -> list[str | None]:
    """Resume the prepared run with the fixed plan; the fact keys the transport was asked."""
    async def go() -> list[str | None]:
        transport = AskedFactory()
        async with SqliteStore.open(path) as store:
            result = await resume(store, RunId.parse(run_id), FIXED, transports=transport)
            assert result.status is RunStatus.COMPLETED
            assert (await store.verify()).ok
        return transport.asked
    return asyncio.run(go())


def run_ids(path: Path) -> list[str]:
    async def go() -> list[str]:
        async with SqliteStore.open(path, read_only=True) as store:
            return [str(s.run_id) for s in await store.list_runs()]
    return asyncio.run(go())


def test_fork_in_a_process_prints_the_new_run_which_resume_completes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    source = recorded(db)
    proc = subprocess.run([sys.executable, "-m", "mfm_store._fork_command", "--db", str(db),
                           "fork", str(source)[:8], "--at", S3],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    new_id = proc.stdout.strip()
    assert str(RunId.parse(new_id)) == new_id != str(source)
    assert finish(db, new_id) == ["quote3", "quote4"]


def test_json_output_names_the_origin(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    db = tmp_path / "runs.db"
    source = recorded(db)
    wanted = RunId.new()
    assert main(["--db", str(db), "fork", str(source), "--at", S3, "--json",
                 "--new-run", str(wanted), "--reuse-facts", "all"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"] == str(wanted) and out["source_run_id"] == str(source)
    assert out["state_id"] == S3 and out["facts_reused"] == 1 and out["facts_rebound"] == 2

    async def origin() -> ForkOrigin | None:
        async with SqliteStore.open(db, read_only=True) as store:
            return await fork_origin(store, wanted)
    found = asyncio.run(origin())
    assert found is not None and found.reuse_facts == "all"
    assert finish(db, str(wanted)) == ["quote4"]


def test_refusals_exit_with_their_codes_and_write_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.db"
    source = recorded(db)
    before = run_ids(db)
    assert main(["--db", str(db), "fork", str(source), "--at", S4]) == 1
    assert "[fork_state_not_reached]" in capsys.readouterr().err
    assert main(["--db", str(db), "fork", "0" * 8, "--at", S3]) == 4
    assert "[run_not_found]" in capsys.readouterr().err
    assert main(["--db", str(db), "fork", str(source), "--at", "nope"]) == 2
    assert "[usage]" in capsys.readouterr().err
    assert main(["--db", str(db), "fork", str(source), "--at", S3, "--new-run", "x"]) == 2
    assert main(["--db", str(db), "fork", str(source), "--at", S3,
                 "--new-run", str(source)]) == 1
    assert "[run_already_exists]" in capsys.readouterr().err
    assert run_ids(db) == before
    assert main(["--db", str(tmp_path / "absent.db"), "fork", str(source), "--at", S3]) == 3
    assert "[store_not_found]" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()


def test_from_a_read_only_copy_into_a_new_file(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy.db"
    source = recorded(copy)
    copy.chmod(0o444)
    copy_bytes = copy.read_bytes()
    mine = tmp_path / "mine.db"
    assert main(["--db", str(mine), "fork", str(source), "--at", S3,
                 "--from", str(copy)]) == 0
    new_id = capsys.readouterr().out.strip()
    assert run_ids(mine) == [new_id]
    assert finish(mine, new_id) == ["quote3", "quote4"]
    assert copy.read_bytes() == copy_bytes
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("mine.db")
                  ) == ["copy.db"]


def test_runs_and_show_name_where_a_fork_came_from(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    source = recorded(db)
    new_id = RunId.new()

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "mfm_store", "--db", str(db), *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("fork", str(source), "--at", S3, "--new-run", str(new_id))
    table = {line.split()[0]: line for line in cli("runs").splitlines()[1:]}
    assert table[str(new_id)].endswith(f"{str(source)[:8]}@{S3}")
    assert table[str(source)].endswith("  -")
    listed = {r["run_id"]: r["forked_from"] for r in json.loads(cli("runs", "--json"))}
    assert listed[str(source)] is None
    assert listed[str(new_id)]["source_run_id"] == str(source)
    assert listed[str(new_id)]["state_id"] == S3
    shown = cli("show", str(new_id)).splitlines()
    assert shown[1].startswith(f"forked from run {source} at {S3} (its seq ")
    assert not any(line.startswith("forked from") for line in cli("show", str(source)).splitlines())
