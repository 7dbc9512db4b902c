"""``mfm-store import`` checks its input before it creates or changes anything, and says what
a wrong input is (issue 11 §2, §3, §6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, cli, env, err, listing, make_store, out, read

HEADER = b'{"format":"mfm_store.export","version":1}\n'


@pytest.fixture
def export(tmp_path: Path) -> bytes:
    """A valid export of a small run."""
    src = tmp_path / "src" / "runs.db"
    src.parent.mkdir()
    make_store(src)
    result = cli("export", "--db", src)
    assert result.returncode == 0, err(result)
    return result.stdout


def _lines(export: bytes) -> list[bytes]:
    return export.splitlines(keepends=True)


def _bad_inputs(export: bytes) -> dict[str, bytes]:
    lines = _lines(export)
    events = [i for i, line in enumerate(lines) if line.startswith(b'{"run_id"')]
    fact = next(i for i in events if b"fact_recorded" in lines[i])
    # The same fact key bound again, to another payload (an artifact of the export).
    other = json.loads(lines[1])["artifact"]
    rebound = json.loads(lines[fact])
    rebound["seq"] = len(events) + 1
    rebound["event"]["Domain"]["payload"]["payload_id"] = other
    end = json.loads(lines[-1])
    end["end"]["events"] += 1
    deep = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    return {
        "truncated": b"".join(lines[:-1]),
        "conflicting": b"".join([*lines[:-1], json.dumps(rebound).encode() + b"\n",
                                 json.dumps(end).encode() + b"\n"]),
        "missing_artifact": b"".join([lines[0], *lines[2:]]).replace(
            b'"artifacts":' + str(json.loads(lines[-1])["end"]["artifacts"]).encode(),
            b'"artifacts":' + str(json.loads(lines[-1])["end"]["artifacts"] - 1).encode()),
        "deep": HEADER + deep + b'{"end":{"runs":0,"events":0,"artifacts":0}}\n',
        "empty": b"",
        "not_an_export": b"hello\n",
    }


def test_a_refused_import_into_a_new_path_leaves_no_file(export: bytes,
                                                         tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    inputs = _bad_inputs(export)
    for name, data in inputs.items():
        (work / f"{name}.jsonl").write_bytes(data)
    before = listing(work)
    for name in inputs:
        for source, stdin in ((f"{name}.jsonl", None), ("-", inputs[name])):
            result = cli("import", "--db", "new.db", source, cwd=work, stdin=stdin)
            assert result.returncode == 3, (name, source, err(result))
            assert_one_line_error(result, "export_malformed")
            assert listing(work) == before, (name, source)


def test_a_refused_import_into_an_existing_file_changes_nothing(export: bytes,
                                                                tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    make_store(db)
    before = db.read_bytes()
    inputs = _bad_inputs(export)
    del inputs["missing_artifact"]  # this database holds that artifact: not an error here
    for name, data in inputs.items():
        result = cli("import", "--db", db, "-", stdin=data)
        assert result.returncode == 3, (name, err(result))
        assert_one_line_error(result, "export_malformed")
        assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db", "src"]


def test_a_deeply_nested_line_is_malformed_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "deep.jsonl").write_bytes(HEADER + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    result = cli("import", "--db", "new.db", "deep.jsonl", cwd=tmp_path)
    assert result.returncode == 3
    assert_one_line_error(result, "export_malformed")
    assert "nest" in err(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.jsonl"]


def test_dev_null_dev_zero_and_a_folder_are_said_to_be_what_they_are(tmp_path: Path) -> None:
    null = cli("import", "--db", "new.db", "/dev/null", cwd=tmp_path)
    assert null.returncode == 3
    assert_one_line_error(null, "export_malformed")
    assert "/dev/null" in err(null) and "empty" in err(null) and "no such file" not in err(null)
    zero = cli("import", "--db", "new.db", "/dev/zero", cwd=tmp_path, timeout=60)
    assert zero.returncode == 3
    assert_one_line_error(zero, "export_malformed")
    assert "no export header" in err(zero)
    folder = cli("import", "--db", "new.db", tmp_path, cwd=tmp_path)
    assert folder.returncode == 3
    assert_one_line_error(folder, "export_malformed")
    assert "a directory" in err(folder)
    empty = cli("import", "--db", "new.db", "-", stdin=b"", cwd=tmp_path)
    assert empty.returncode == 3 and "standard input: empty input" in err(empty)
    missing = cli("import", "--db", "new.db", "absent.jsonl", cwd=tmp_path)
    assert missing.returncode == 3
    assert_one_line_error(missing, "export_not_found")
    assert list(tmp_path.iterdir()) == []


def test_an_import_from_a_fifo_and_into_a_new_file(export: bytes, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    db = tmp_path / "new.db"
    proc = subprocess.Popen(["sh", "-c", 'cat > "$0"', str(fifo)], stdin=subprocess.PIPE)
    try:
        proc.stdin.write(export)  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
        result = cli("import", "--db", db, fifo, timeout=60)
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # the import never opened the FIFO
            proc.kill()
            proc.wait()
    assert result.returncode == 0, err(result)
    assert "new file" in out(result)
    assert cli("export", "--db", db).stdout == export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "pipe", "src"]
    assert read(db, "verify").ok


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL semantics")
def test_a_killed_import_into_a_new_path_leaves_no_database_there(tmp_path: Path) -> None:
    src = tmp_path / "big.db"
    make_store(src, events=20_000, blobs=50, blob_size=256 * 1024)
    dump = tmp_path / "big.jsonl"
    assert cli("export", "--db", src, "-o", dump).returncode == 0
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "mfm_store", "import", "--db",
                             str(out_dir / "new.db"), str(dump)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env())
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".importing") and p.stat().st_size > 0
                      for p in out_dir.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)  # polling for the condition above
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out_dir / "new.db").exists()
    assert all(p.name.startswith(".new.db.") for p in out_dir.iterdir())  # hidden leftovers
