"""``export -o`` and ``artifact -o`` never overwrite a file they were not asked to replace,
never write onto the database, and leave nothing half-written (issue 11 §2)."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cli import (
    assert_one_line_error,
    cli,
    cli_all,
    env,
    err,
    listing,
    make_store,
    read,
)

FACT_PAYLOAD = b'{"price":12}'
FACT_ID = hashlib.sha256(FACT_PAYLOAD).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    make_store(path)
    return path


def test_export_refuses_an_existing_file_unless_forced(db: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dump.jsonl"
    dest.write_bytes(b"my notes")
    refused = cli("export", "--db", db, "-o", dest)
    assert refused.returncode == 1
    assert_one_line_error(refused, "destination_exists")
    assert "--force" in err(refused)
    assert dest.read_bytes() == b"my notes"
    forced = cli("export", "--db", db, "-o", dest, "--force")
    assert forced.returncode == 0, err(forced)
    assert dest.read_bytes() == cli("export", "--db", db).stdout


def test_artifact_refuses_an_existing_file_unless_forced(db: Path, tmp_path: Path) -> None:
    dest = tmp_path / "payload.json"
    dest.write_bytes(b"my notes")
    refused = cli("artifact", FACT_ID, "--db", db, "-o", dest)
    assert refused.returncode == 1
    assert_one_line_error(refused, "destination_exists")
    assert dest.read_bytes() == b"my notes"
    assert cli("artifact", FACT_ID, "--db", db, "-o", dest, "--force").returncode == 0
    assert dest.read_bytes() == FACT_PAYLOAD
    fresh = tmp_path / "new.json"
    assert cli("artifact", FACT_ID, "--db", db, "-o", fresh).returncode == 0
    assert fresh.read_bytes() == FACT_PAYLOAD
    assert oct(fresh.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_nothing_is_ever_written_onto_the_database(db: Path, tmp_path: Path) -> None:
    os.symlink(db, tmp_path / "link.db")
    os.link(db, tmp_path / "hard.db")
    before = db.read_bytes()
    targets: list[str | Path] = [db, "./runs.db", tmp_path / "link.db", tmp_path / "hard.db",
                                 f"{db}-wal", f"{db}-shm", f"{db}-journal"]
    commands: list[list[str | Path]] = [
        [*command, "--db", db, "-o", target, *force] for target in targets
        for command, force in ((["export"], []), (["export"], ["--force"]),
                               (["artifact", FACT_ID], ["--force"]))]
    for result in cli_all(*commands, cwd=tmp_path):
        assert result.returncode == 1, result.args
        assert_one_line_error(result, "destination_is_database")
    backup = cli("backup", "--db", db, f"{db}-wal")
    assert backup.returncode == 1
    assert_one_line_error(backup, "destination_is_database")
    # `>> runs.db`: standard output is the database itself.
    for command in (["export"], ["artifact", FACT_ID]):
        with open(db, "ab") as stdout:
            appended = cli(*command, "--db", db, stdout=stdout)
        assert appended.returncode == 1
        assert_one_line_error(appended, "destination_is_database")
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.db", "link.db", "runs.db"]
    assert read(db, "verify").ok


def test_a_directory_or_a_missing_folder_is_refused(db: Path, tmp_path: Path) -> None:
    for dest in (tmp_path, tmp_path / "absent" / "dump.jsonl", f"{tmp_path}/new/"):
        for command in (["export"], ["artifact", FACT_ID]):
            result = cli(*command, "--db", db, "-o", dest, "--force")
            assert result.returncode == 1, (command, dest)
            assert_one_line_error(result, "invalid_destination")
        backup = cli("backup", db, dest)
        assert backup.returncode == 1, dest
        assert_one_line_error(backup, "invalid_destination")
        imported = cli("import", "--db", dest, "-", stdin=cli("export", "--db", db).stdout)
        assert imported.returncode in (1, 3), dest
        assert "importing" not in err(imported)  # names the user's path, not a temp file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


def test_through_a_dangling_symlink_the_file_is_created_at_its_target(db: Path,
                                                                      tmp_path: Path) -> None:
    (tmp_path / "dump.jsonl").symlink_to("real.jsonl")
    (tmp_path / "copy.db").symlink_to("real.db")
    assert cli("export", "--db", db, "-o", tmp_path / "dump.jsonl").returncode == 0
    assert (tmp_path / "real.jsonl").read_bytes() == cli("export", "--db", db).stdout
    imported = cli("import", "--db", tmp_path / "copy.db", tmp_path / "dump.jsonl")
    assert imported.returncode == 0, err(imported)
    assert (tmp_path / "copy.db").is_symlink() and read(tmp_path / "real.db", "verify").ok


def test_a_fifo_destination_is_written_through_not_replaced(db: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        result = cli("export", "--db", db, "-o", fifo, timeout=60)
        received, _ = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert result.returncode == 0, err(result)
    assert received == cli("export", "--db", db).stdout
    assert fifo.is_fifo()
    piped = cli("artifact", FACT_ID, "--db", db, "-o", "/dev/stdout")
    assert piped.returncode == 0, err(piped)
    assert piped.stdout == FACT_PAYLOAD


def _writing_into(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` holds a non-empty file of ``folder`` open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fds.iterdir())
    except OSError:
        return False
    for entry in entries:
        try:
            if os.readlink(entry).startswith(f"{folder}/") and entry.stat().st_size > 0:
                return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_export_leaves_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    make_store(db, events=20_000, blobs=100, blob_size=256 * 1024)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "other.txt").write_bytes(b"keep me")
    dest = out_dir / "dump.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "mfm_store", "export", "--db", str(db),
                             "-o", str(dest)], stderr=subprocess.PIPE, env=env())
    try:
        deadline = time.monotonic() + 60
        while not _writing_into(proc.pid, out_dir):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline
            time.sleep(0.001)  # polling for the condition above
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL  # killed while writing, not after finishing
    assert listing(out_dir) == {"other.txt": b"keep me"}


def test_a_failed_export_leaves_nothing_behind(db: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE artifacts SET data = ? WHERE id = ?", (b"{" + FACT_PAYLOAD[1:].upper(),
                                                               FACT_ID))
    conn.commit()
    conn.close()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old.jsonl").write_bytes(b"previous export")
    for dest in (out_dir / "dump.jsonl", out_dir / "old.jsonl"):
        result = cli("export", "--db", db, "-o", dest, "--force")
        assert result.returncode == 3
        assert_one_line_error(result, "storage_corruption")
        failed = cli("artifact", FACT_ID, "--db", db, "-o", dest, "--force")
        assert failed.returncode == 3
        assert_one_line_error(failed, "storage_corruption")
    assert listing(out_dir) == {"old.jsonl": b"previous export"}


def test_without_unnamed_files_a_named_temp_file_is_used_and_removed(db: Path,
                                                                     tmp_path: Path) -> None:
    """Where O_TMPFILE is missing (macOS, some file systems): a hidden named temp file."""
    script = ("import os, sys\ndel os.O_TMPFILE\nfrom mfm_store.cli import main\n"
              "raise SystemExit(main(sys.argv[1:]))")
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-c", script, *map(str, args)],
                              capture_output=True, timeout=60, env=env())

    dest = out_dir / "dump.jsonl"
    assert run("export", "--db", db, "-o", dest).returncode == 0
    assert dest.read_bytes() == cli("export", "--db", db).stdout
    assert oct(dest.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert run("export", "--db", db, "-o", dest).returncode == 1
    assert run("artifact", "f" * 64, "--db", db, "-o", out_dir / "x", "--force").returncode == 4
    assert sorted(p.name for p in out_dir.iterdir()) == ["dump.jsonl"]
