"""Hostile arguments and files give one coded line on stderr, never a traceback or a hang
(issue 11 §3, §6)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, cli, cli_all, env, err, make_store, out

BIG = str(2**70)


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "runs.db"
    return path, str(make_store(path))


def test_out_of_range_numbers_are_usage_errors(db: tuple[Path, str]) -> None:
    path, run = db
    bad: list[list[str | Path]] = [
        ["show", run, "--to", BIG], ["show", run, "--from", BIG], ["show", run, "--from", "-1"],
        ["show", run, "--to", "1.5"], ["gc", "--min-age", "inf"], ["gc", "--min-age", "1e400"],
        ["gc", "--min-age", "nan"], ["gc", "--min-age", "-1"], ["gc", "--min-age", "soon"],
        ["frobnicate"], ["show"]]
    for result in cli_all(*([*args, "--db", path] for args in bad)):
        assert result.returncode == 2, (result.args, err(result))
        assert_one_line_error(result, "usage")
    far = cli("gc", "--db", path, "--min-age", "1e300", "--apply")
    assert far.returncode == 0, err(far)
    assert out(far).startswith("removed 0 unreferenced artifact(s)")
    last = cli("show", run, "--db", path, "--from", str(2**63 - 1), "--to", str(2**63 - 1))
    assert last.returncode == 0 and len(out(last).splitlines()) == 1  # the header only


def test_a_huge_run_id_is_not_echoed_whole(db: tuple[Path, str]) -> None:
    path, _ = db
    for command in ("show", "facts", "export --run"):
        result = cli(*command.split(), "f" * 100_000, "--db", path)
        assert result.returncode == 4, command
        assert_one_line_error(result, "run_not_found")
        assert len(err(result)) < 300


def test_files_that_are_not_databases(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    cases: list[tuple[str | Path, str]] = [
        (fifo, "a FIFO"), ("/dev/null", "a character device"),
        ("/dev/zero", "a character device"), (tmp_path / "folder", "a directory"),
        (tmp_path / "empty.db", "")]
    commands: list[list[str | Path]] = [["runs"], ["verify"], ["stats"], ["gc", "--apply"],
                                        ["export"], ["import", "-"]]
    for target, kind in cases:
        for result in cli_all(*([*c, "--db", target] for c in commands)):
            assert result.returncode == 3, (result.args, err(result))
            assert_one_line_error(result, "not_an_mfm_store")
            assert "not an mfm_store database" in err(result) or "empty" in err(result), \
                result.args
            assert kind in err(result)
    assert fifo.is_fifo() and (tmp_path / "empty.db").read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "fifo", "folder"]


def test_undecodable_and_multi_line_paths(tmp_path: Path) -> None:
    odd = os.fsdecode(b"runs-\xff\nsecond-line.db")
    path = tmp_path / odd
    make_store(path)
    verify = cli("verify", "--db", path)
    assert verify.returncode == 0, err(verify)
    assert "\\udcff" in out(verify)
    dest = tmp_path / os.fsdecode(b"copy-\xfe.db")
    backup = cli("backup", path, dest)
    assert backup.returncode == 0, err(backup)
    missing = cli("runs", "--db", tmp_path / os.fsdecode(b"absent\n\xff.db"))
    assert missing.returncode == 3
    assert_one_line_error(missing, "store_not_found")


def test_an_unexpected_exception_is_one_line_with_a_code(db: tuple[Path, str]) -> None:
    path, _ = db
    for exc in ("TypeError('boom')", "RecursionError('deep')", "OverflowError('big')"):
        script = ("import sys\nimport mfm_store.cli._maintain as m\n"
                  f"async def broken(args):\n    raise {exc}\n"
                  "m._stats = broken\nfrom mfm_store.cli import main\n"
                  "raise SystemExit(main(sys.argv[1:]))")
        result = subprocess.run([sys.executable, "-c", script, "stats", "--db", str(path)],
                                capture_output=True, timeout=60, env=env())
        assert result.returncode == 5, err(result)
        assert_one_line_error(result, "internal_error")
        assert "please report it" in err(result)


def test_importing_a_database_into_itself_is_refused(db: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    path, _ = db
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    same = cli("import", "--db", copy, copy)
    assert same.returncode == 3
    assert_one_line_error(same, "export_malformed")
    assert copy.read_bytes() == path.read_bytes()
