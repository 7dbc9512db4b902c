"""``mfm-store`` run as a user types it: ``python -m mfm_store ...`` (and the console script)."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, cli, cli_all, err, out, read
from helpers.cli import env as _env

from mfm_store import ArtifactKind, EventEnvelope, RunId
from mfm_store.sqlite import SqliteStore


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The demo, run once at its default path (under XDG_DATA_HOME): (db, run id, story)."""
    home = tmp_path_factory.mktemp("home")
    result = cli("demo", env=_env(XDG_DATA_HOME=str(home)), cwd=home)
    assert result.returncode == 0, err(result)
    db = home / "mfm_store" / "demo.db"
    (run,) = read(db, "list_runs")
    return db, str(run.run_id), out(result)


def copy_of(db: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    shutil.copy(db, target)
    assert not Path(f"{db}-wal").exists()
    return target


# demo

def test_demo_records_crashes_resumes_and_replays_identically(
        demo: tuple[Path, str, str]) -> None:
    db, run, story = demo
    assert f"database: {db}" in story
    assert "SIGKILL inside demo.order.submit" in story
    assert "(from the file: transport not called)" in story
    assert "replay identical" in story and "REPLAY DIFFERS" not in story
    # The broker took the order once, in the killed process; the resumed one only asked
    # for its status.
    assert story.count("POST /broker/orders ") == 1 and "GET /broker/orders/T-" in story
    assert "order POSTs received 1, orders placed 1" in story
    summary = read(db, "list_runs")[0]
    assert summary.status == "completed" and summary.op_id == "demo"
    assert read(db, "verify").ok
    copy = db.with_name("demo-copy.db")
    assert read(copy, "read_range", RunId.parse(run)) == read(db, "read_range", RunId.parse(run))
    assert f"figures: {summary.head_seq} events" in story


def test_demo_replaces_an_earlier_demo_file(demo: tuple[Path, str, str],
                                            tmp_path: Path) -> None:
    db = copy_of(demo[0], tmp_path)
    again = cli("demo", "--db", db)
    assert again.returncode == 0, err(again)
    (run,) = read(db, "list_runs")
    assert str(run.run_id) != demo[1]


def test_demo_never_removes_a_file_that_is_not_a_demo_file(tmp_path: Path) -> None:
    foreign = tmp_path / "notes.db"
    foreign.write_text("my notes")
    result = cli("demo", "--db", foreign)
    assert result.returncode == 3
    assert_one_line_error(result, "not_a_demo_file")
    assert foreign.read_text() == "my notes"

    mine = tmp_path / "mine.db"

    async def seed() -> None:
        async with SqliteStore.open(mine) as store:
            run = RunId.new()
            from mfm_store import RunStarted
            manifest = await store.put(ArtifactKind.MANIFEST, b'{"op":"payroll"}')
            context = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b"{}")
            await store.append(run, 0, [EventEnvelope(run, 1, None, RunStarted(
                "payroll", manifest, context))])

    asyncio.run(seed())
    result = cli("demo", "--db", mine)
    assert result.returncode == 3 and len(read(mine, "list_runs")) == 1


# reading commands

def test_runs_text_and_json(demo: tuple[Path, str, str]) -> None:
    db, run, _ = demo
    text = cli("runs", "--db", db)
    assert text.returncode == 0 and run in out(text) and "completed" in out(text)
    (row,) = json.loads(out(cli("runs", "--db", db, "--json")))
    assert row["run_id"] == run and row["status"] == "completed" and row["op_id"] == "demo"


def test_show_lists_events_and_json_is_the_interchange_form(demo: tuple[Path, str, str]) -> None:
    db, run, _ = demo
    stored = read(db, "read_range", RunId.parse(run))
    text = cli("show", run[:8], "--db", db)
    assert text.returncode == 0, err(text)
    lines = out(text).splitlines()
    assert len(lines) == 1 + len(stored)
    assert "RunStarted" in lines[1] and "RunCompleted" in lines[-1]
    assert any("demo.order.submit attempt 1" in line for line in lines)
    js = cli("show", run, "--db", db, "--json")
    assert [EventEnvelope.from_json(json.loads(x)) for x in out(js).splitlines()] == stored
    part = cli("show", run, "--db", db, "--from", "2", "--to", "3", "--json")
    assert [json.loads(x)["seq"] for x in out(part).splitlines()] == [2, 3]


def test_facts_keys_values_and_json(demo: tuple[Path, str, str]) -> None:
    db, run, _ = demo
    facts = read(db, "facts", RunId.parse(run))
    assert json.loads(out(cli("facts", run, "--db", db, "--json"))) == facts
    values = json.loads(out(cli("facts", run, "--db", db, "--json", "--values")))
    submit = next(k for k in values if k.startswith("broker:submit|"))
    assert json.loads(values[submit]["value"]["body"]["text"])["accepted"] is True
    random_key = next(k for k in values if k.startswith("mfm:random_bytes|"))
    assert len(bytes.fromhex(values[random_key]["bytes_hex"])) == 6
    text = out(cli("facts", run, "--db", db))
    assert all(f"{k}  {v}" in text or v in text for k, v in facts.items())


def test_artifact_to_stdout_and_to_a_file(demo: tuple[Path, str, str], tmp_path: Path) -> None:
    db, run, _ = demo
    payload_id = next(iter(read(db, "facts", RunId.parse(run)).values()))
    data = cli("artifact", payload_id, "--db", db).stdout
    assert hashlib.sha256(data).hexdigest() == payload_id
    target = tmp_path / "payload.json"
    assert cli("artifact", payload_id, "--db", db, "-o", target).returncode == 0
    assert target.read_bytes() == data


def test_stats_and_verify_on_a_clean_file(demo: tuple[Path, str, str]) -> None:
    db, _, _ = demo
    stats = json.loads(out(cli("stats", "--db", db, "--json")))
    assert stats["runs"] == 1 and stats["artifacts"] > 0
    verify = cli("verify", "--db", db)
    assert verify.returncode == 0 and out(verify).rstrip().endswith(": ok")
    report = json.loads(out(cli("verify", "--db", db, "--json")))
    assert report["ok"] is True and report["problems"] == []


def test_database_from_the_environment_and_db_wins(demo: tuple[Path, str, str],
                                                    tmp_path: Path) -> None:
    db, run, _ = demo
    from_env = cli("runs", env=_env(MFM_STORE_DB=str(db)))
    assert from_env.returncode == 0 and run in out(from_env)
    missing = tmp_path / "missing.db"
    after, before, env_only = cli_all(["runs", "--db", db], ["--db", db, "runs"], ["runs"],
                                      env=_env(MFM_STORE_DB=str(missing)))
    assert after.returncode == before.returncode == 0 and run in out(before)
    assert env_only.returncode == 3
    assert not missing.exists()
    none = cli("runs")
    assert none.returncode == 2
    assert_one_line_error(none, "usage")


# failure paths

READERS: list[list[str | Path]] = [
    ["runs"], ["show", "0000"], ["facts", "0000"], ["artifact", "a" * 64], ["verify"],
    ["export"], ["stats"], ["gc"], ["gc", "--apply"], ["backup", "dest.db"]]


def test_missing_file_fails_clearly_and_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "absent.db"
    for result in cli_all(*([*args, "--db", db] for args in READERS), cwd=tmp_path):
        assert result.returncode == 3, result.args
        assert_one_line_error(result, "store_not_found")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_foreign_file_fails_clearly(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    (tmp_path / "x.jsonl").write_text('{"format":"mfm_store.export","version":1}\n'
                                      '{"end":{"runs":0,"events":0,"artifacts":0}}\n')
    before = foreign.read_bytes()
    commands: list[list[str | Path]] = [["runs"], ["verify"], ["export"], ["gc", "--apply"],
                                        ["import", "x.jsonl"]]
    for result in cli_all(*([*c, "--db", foreign] for c in commands), cwd=tmp_path):
        assert result.returncode == 3, result.args
        assert_one_line_error(result, "not_an_mfm_store")
    assert foreign.read_bytes() == before


def test_flipped_artifact_bytes_make_verify_fail_naming_the_artifact(
        demo: tuple[Path, str, str], tmp_path: Path) -> None:
    db = copy_of(demo[0], tmp_path)
    conn = sqlite3.connect(db)
    (aid, data), = conn.execute("SELECT id, data FROM artifacts ORDER BY id LIMIT 1")
    flipped = bytes([data[0] ^ 0xFF]) + data[1:]
    conn.execute("UPDATE artifacts SET data = ? WHERE id = ?", (flipped, aid))
    conn.commit()
    conn.close()
    result = cli("verify", "--db", db)
    assert result.returncode == 1
    assert f"artifact {aid}" in out(result)
    report = json.loads(out(cli("verify", "--db", db, "--json")))
    assert report["ok"] is False
    assert {p["artifact_id"] for p in report["problems"]} == {aid}
    fetched = cli("artifact", aid, "--db", db)
    assert fetched.returncode == 3 and fetched.stdout == b""
    assert_one_line_error(fetched, "storage_corruption")


def _put_orphan(db: Path) -> str:
    async def go() -> str:
        async with SqliteStore.open(db) as store:
            return await store.put(ArtifactKind.OUTPUT, b"nobody refers to me")
    return asyncio.run(go())


def test_gc_is_a_dry_run_unless_applied(demo: tuple[Path, str, str], tmp_path: Path) -> None:
    db = copy_of(demo[0], tmp_path)
    orphan = _put_orphan(db)
    young = cli("gc", "--db", db)
    assert young.returncode == 0 and orphan not in out(young)  # younger than an hour
    dry = json.loads(out(cli("gc", "--db", db, "--min-age", "0", "--json")))
    assert dry == {"applied": False, "artifacts": [orphan], "bytes": 19}
    assert read(db, "exists", orphan) is True
    applied = cli("gc", "--db", db, "--min-age", "0", "--apply")
    assert applied.returncode == 0 and orphan in out(applied)
    assert read(db, "exists", orphan) is False
    assert cli("verify", "--db", db).returncode == 0


def test_export_import_export_is_identical_and_import_is_idempotent(
        demo: tuple[Path, str, str], tmp_path: Path) -> None:
    db, run, _ = demo
    first = cli("export", "--db", db)
    assert first.returncode == 0 and err(first) == ""
    new = tmp_path / "new.db"
    imported = cli("import", "--db", new, "-", stdin=first.stdout)
    assert imported.returncode == 0, err(imported)
    assert "new file" in out(imported)
    assert cli("verify", "--db", new).returncode == 0
    assert cli("export", "--db", new).stdout == first.stdout
    dump = tmp_path / "dump.jsonl"
    assert cli("export", "--db", new, "-o", dump).returncode == 0
    assert dump.read_bytes() == first.stdout
    again = cli("import", "--db", new, dump)
    assert again.returncode == 0 and "nothing to import" in out(again)
    one = cli("export", "--db", db, "--run", run[:6])
    assert one.stdout == first.stdout  # the only run references every artifact


def test_import_refuses_a_diverging_run(demo: tuple[Path, str, str], tmp_path: Path) -> None:
    db, run, _ = demo
    dump = tmp_path / "dump.jsonl"
    assert cli("export", "--db", db, "-o", dump).returncode == 0
    lines = dump.read_bytes().splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if b'"seq":3,' in line)
    other = tmp_path / "other.db"
    rid = RunId.parse(run)

    async def seed() -> None:
        async with SqliteStore.open(other) as store:
            for line in lines:  # the export's artifacts, which its events name
                item = json.loads(line)
                if "artifact" in item:
                    await store.put(ArtifactKind.from_json(item["kind"]),
                                    base64.b64decode(item["data"]))
            envs = [EventEnvelope.from_json(json.loads(x)) for x in lines[i - 2:i]]
            from mfm_store import DomainEvent
            await store.append(rid, 0, [*envs, EventEnvelope(rid, 3, None,
                                                             DomainEvent("mine", {}))])
    asyncio.run(seed())
    result = cli("import", "--db", other, dump)
    assert result.returncode == 1
    assert_one_line_error(result, "import_diverged")
    assert "seq 3" in err(result)
    assert read(other, "head_seq", rid) == 3


def test_backup_writes_a_copy_and_never_overwrites(demo: tuple[Path, str, str],
                                                   tmp_path: Path) -> None:
    db, run, _ = demo
    dest = tmp_path / "b.db"
    done = cli("backup", db, dest)
    assert done.returncode == 0, err(done)
    assert read(dest, "read_range", RunId.parse(run)) == read(db, "read_range", RunId.parse(run))
    before = dest.read_bytes()
    again = cli("backup", "--db", db, dest)
    assert again.returncode == 1 and dest.read_bytes() == before
    assert "already exists" in err(again)


def test_usage_errors_exit_2(demo: tuple[Path, str, str]) -> None:
    db, _, _ = demo
    assert cli().returncode == 2
    assert cli("frobnicate").returncode == 2
    bad_id = cli("artifact", "xyz", "--db", db)
    assert bad_id.returncode == 2
    assert_one_line_error(bad_id, "invalid_id")
    unknown = cli("show", "ffffffff", "--db", db)
    assert unknown.returncode == 4
    assert_one_line_error(unknown, "run_not_found")


def test_console_script(demo: tuple[Path, str, str]) -> None:
    script = shutil.which("mfm-store", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "stats", "--json"], capture_output=True, timeout=60,
                            env=_env(MFM_STORE_DB=str(demo[0])))
    assert result.returncode == 0 and json.loads(result.stdout)["runs"] == 1
    top = subprocess.run([script, "--help"], capture_output=True, timeout=60, env=_env())
    assert b"exit codes:" in top.stdout


def test_progress_bar_on_a_terminal_only(demo: tuple[Path, str, str], tmp_path: Path) -> None:
    db = demo[0]
    piped = cli("export", "--db", db, "-o", tmp_path / "a.jsonl")
    assert "it/s" not in err(piped) and "line" not in err(piped)
    export = ["export", "--db", str(db), "-o"]
    shown = on_a_terminal([sys.executable, "-m", "mfm_store", *export, str(tmp_path / "b.jsonl")])
    assert b"export: " in shown and b"line" in shown  # the bar, cleared once done
    without_tqdm = ("import sys; sys.modules['tqdm'] = None; from mfm_store.cli import main; "
                    "raise SystemExit(main(sys.argv[1:]))")
    shown = on_a_terminal([sys.executable, "-c", without_tqdm, *export,
                           str(tmp_path / "c.jsonl")])
    assert shown.startswith(b"exported 1 run(s)") and b"export: " not in shown


def on_a_terminal(args: list[str]) -> bytes:
    """Run with stderr on a pseudo-terminal; returns what it wrote there."""
    controller, terminal = os.openpty()
    # A fresh pty is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = subprocess.run(args, stderr=terminal, stdout=subprocess.DEVNULL, timeout=60,
                                env=_env())
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal side is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0, shown
    return shown
