"""``mfm-store`` on a PostgreSQL store (and ``memory:``), run as a user types it, against the
test session's throwaway server: every command, the same answers as on a SQLite file, and a
DSN's password never printed."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from helpers.cli import assert_one_line_error, cli, cli_all, env, err, make_store, out
from helpers.engine import record, recorded_plan

from conftest import pg_dsn
from mfm_store import ArtifactKind, RunId, open_store
from mfm_store.engine import ReplayOutcome, replay
from mfm_store.sqlite import SqliteStore

_MARKER = "pw-Xq7-never-printed"


def pg_target(schema: str | None = None) -> str:
    """The server's DSN with a fresh schema (``#schema=``)."""
    return f"{pg_dsn()}#schema={schema or 'c_' + uuid.uuid4().hex[:16]}"


def with_password(target: str) -> tuple[str, str]:
    """``(target with a password, the password)``: the server's own password if its DSN has
    one, else a marker (the test server trusts its socket, so any password connects)."""
    parts = urlsplit(target)
    if parts.password:
        return target, parts.password
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or 'postgres'}:{_MARKER}@{host}"
    return urlunsplit(parts._replace(netloc=netloc)), _MARKER


def schema_exists(schema: str) -> bool:
    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                           (schema,)).fetchone()
    return row is not None and row[0] == 1


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, err(result)
    return out(result)


class Loaded:
    """A SQLite file (an engine-recorded run, a run with a fact and unreferenced blobs), its
    export, and a PostgreSQL schema the export was imported into with ``mfm-store import``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = folder / "src.db"
        self.plain = make_store(self.db, events=40, blobs=2, blob_size=3000)
        self.recorded = asyncio.run(record(self.db))
        self.export = folder / "src.jsonl"
        ok(cli("export", "--db", self.db, "-o", self.export))
        self.target, self.password = with_password(pg_target())
        imported = cli("import", "--db", self.target, self.export)
        self.import_output = ok(imported)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return Loaded(tmp_path_factory.mktemp("pgcli"))


def fresh_import(loaded: Loaded) -> str:
    target = pg_target()
    ok(cli("import", "--db", target, loaded.export))
    return target


# import and export

def test_import_into_postgres_then_export_is_byte_identical_to_the_files(
        loaded: Loaded, tmp_path: Path) -> None:
    assert "imported " in loaded.import_output and "2 new run(s)" in loaded.import_output
    assert loaded.password not in loaded.import_output
    pg_file, file_file = tmp_path / "pg.jsonl", tmp_path / "file.jsonl"
    run = str(loaded.plain)
    results = cli_all(["export", "--db", loaded.target, "-o", pg_file],
                      ["export", "--db", loaded.target],
                      ["export", "--db", loaded.target, "--run", run[:8]],
                      ["export", "--db", loaded.db, "--run", run[:8]],
                      ["export", "--db", loaded.db, "-o", file_file])
    for result in results:
        assert result.returncode == 0, err(result)
        assert loaded.password not in out(result) + err(result)
    assert pg_file.read_bytes() == loaded.export.read_bytes() == file_file.read_bytes()
    assert results[1].stdout == loaded.export.read_bytes()
    assert results[2].stdout == results[3].stdout and b'"seq":40' in results[2].stdout
    # Importing again is harmless.
    again = ok(cli("import", "--db", loaded.target, loaded.export))
    assert "nothing to import" in again and loaded.password not in again


def test_import_refuses_a_diverging_run_on_postgres_and_writes_nothing(
        loaded: Loaded, tmp_path: Path) -> None:
    target = fresh_import(loaded)
    lines = loaded.export.read_bytes().splitlines(keepends=True)
    # The same run ids with one event changed.
    changed = [line.replace(b'"pad":"xxxx', b'"pad":"yyyy', 1) if b'"i":7,' in line
               else line for line in lines]
    assert changed != lines
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"".join(changed))
    result = cli("import", "--db", target, other)
    assert result.returncode == 1
    assert_one_line_error(result, "import_diverged")
    assert cli("export", "--db", target).stdout == loaded.export.read_bytes()


# reading commands

def test_reading_commands_answer_as_on_the_file(loaded: Loaded) -> None:
    run = str(loaded.recorded)
    commands: list[list[str]] = [["runs", "--json"], ["runs"], ["show", run[:10]],
                                 ["show", run, "--json", "--from", "2", "--to", "5"],
                                 ["facts", run, "--values", "--json"], ["facts", run],
                                 ["stats", "--json"]]
    pg = cli_all(*(["--db", loaded.target, *c] for c in commands))
    files = cli_all(*(["--db", str(loaded.db), *c] for c in commands))
    for command, a, b in zip(commands, pg, files, strict=True):
        assert a.returncode == b.returncode == 0, (command, err(a), err(b))
        assert loaded.password not in out(a) + err(a)
        if command[0] == "runs":
            continue
        if command[0] == "stats":
            ps, fs = json.loads(out(a)), json.loads(out(b))
            assert {k: ps[k] for k in ("runs", "events", "artifacts")} == \
                {k: fs[k] for k in ("runs", "events", "artifacts")}
            continue
        assert out(a) == out(b), command
    # Creation times are not exported: the runs agree on everything else.
    def runs_of(text: str) -> list[tuple[str, str, str, int]]:
        return sorted((r["run_id"], r["op_id"], r["status"], r["events"])
                      for r in json.loads(text))
    assert runs_of(out(pg[0])) == runs_of(out(files[0])) and len(runs_of(out(pg[0]))) == 2
    assert out(pg[1]).splitlines()[0].startswith("RUN ")


def test_artifact_bytes_and_not_found_on_postgres(loaded: Loaded, tmp_path: Path) -> None:
    first = json.loads(loaded.export.read_bytes().splitlines()[1])
    aid = first["artifact"]
    dest = tmp_path / "a.bin"
    missing = "0" * 64
    got, to_file, absent, no_run = cli_all(
        ["artifact", aid, "--db", loaded.target], ["artifact", aid, "--db", loaded.target,
                                                   "-o", dest],
        ["artifact", missing, "--db", loaded.target],
        ["show", "ffffffff", "--db", loaded.target])
    from_file = cli("artifact", aid, "--db", loaded.db)
    assert got.returncode == 0 and got.stdout == from_file.stdout
    assert to_file.returncode == 0 and dest.read_bytes() == from_file.stdout
    assert absent.returncode == 4 and no_run.returncode == 4
    assert_one_line_error(absent, "artifact_not_found")
    assert_one_line_error(no_run, "run_not_found")
    assert loaded.password not in err(no_run) and "postgresql://" in err(no_run)


def test_verify_on_postgres_is_clean(loaded: Loaded) -> None:
    text, as_json = cli_all(["verify", "--db", loaded.target],
                            ["verify", "--db", loaded.target, "--json"])
    assert ok(text).startswith("postgresql://") and loaded.password not in out(text)
    report = json.loads(ok(as_json))
    assert report["ok"] and report["runs"] == 2 and report["events"] > 40


def test_reading_commands_open_read_only_and_never_create_a_schema() -> None:
    schema = "absent_" + uuid.uuid4().hex[:12]
    target = pg_target(schema)
    commands = [["runs"], ["show", "3f2b"], ["facts", "3f2b"], ["artifact", "0" * 64],
                ["verify"], ["stats"], ["gc"], ["export"]]
    for command, result in zip(commands, cli_all(*(["--db", target, *c] for c in commands)),
                               strict=True):
        assert result.returncode == 3, (command, err(result))
        assert_one_line_error(result, "store_not_found")
    assert not schema_exists(schema)


# maintenance

def test_gc_on_postgres_dry_run_then_apply(loaded: Loaded) -> None:
    target = fresh_import(loaded)
    dry = json.loads(ok(cli("gc", "--db", target, "--min-age", "0", "--json")))
    assert not dry["applied"] and len(dry["artifacts"]) == 2  # make_store's blobs
    applied = json.loads(ok(cli("gc", "--db", target, "--min-age", "0", "--apply", "--json")))
    assert applied["applied"] and applied["artifacts"] == dry["artifacts"]
    after = json.loads(ok(cli("gc", "--db", target, "--min-age", "0", "--json")))
    assert after["artifacts"] == []
    assert json.loads(ok(cli("verify", "--db", target, "--json")))["ok"]


def test_backup_of_postgres_is_a_compact_file_that_replays_offline(
        loaded: Loaded, tmp_path: Path) -> None:
    copy, second = tmp_path / "copy.db", tmp_path / "second.db"
    by_db, positional = cli_all(["backup", "--db", loaded.target, copy],
                                ["backup", loaded.target, second])
    for result in (by_db, positional):
        assert ok(result).startswith("backed up postgresql://")
        assert loaded.password not in out(result) + err(result)
    # The copy holds every run and the artifacts they name, and verifies clean.
    assert json.loads(ok(cli("verify", "--db", copy, "--json")))["ok"]
    for run in (loaded.plain, loaded.recorded):
        from_copy, from_file = cli_all(["export", "--db", copy, "--run", str(run)],
                                       ["export", "--db", loaded.db, "--run", str(run)])
        assert from_copy.returncode == 0 and from_copy.stdout == from_file.stdout
    replayed = asyncio.run(replay(copy, loaded.recorded, recorded_plan()))
    assert replayed.outcome is ReplayOutcome.IDENTICAL, str(replayed)
    assert replayed.states_matched == 3
    # Each run's events are together in the copy (the compact form).
    async def rows() -> list[str]:
        async with SqliteStore.open(second, read_only=True) as store:
            return [str(s.run_id) for s in await store.list_runs()]
    assert sorted(asyncio.run(rows())) == sorted([str(loaded.plain), str(loaded.recorded)])


def test_backup_refusals_for_other_stores(loaded: Loaded, tmp_path: Path) -> None:
    exists = tmp_path / "exists.db"
    exists.write_bytes(b"keep")
    onto, into_pg, of_memory, two = cli_all(
        ["backup", "--db", loaded.target, exists],
        ["backup", "--db", loaded.db, loaded.target],
        ["backup", "--db", "memory:", tmp_path / "m.db"],
        ["backup", "--db", loaded.db, loaded.target, tmp_path / "x.db"])
    assert onto.returncode == 1 and exists.read_bytes() == b"keep"
    assert_one_line_error(onto, "destination_exists")
    for result in (into_pg, of_memory, two):
        assert result.returncode == 2
        assert_one_line_error(result, "usage")
        assert loaded.password not in err(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.db"]


# memory:

def test_memory_store_import_checks_and_reading_commands_refuse(loaded: Loaded,
                                                                tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(loaded.export.read_bytes().rsplit(b"\n", 2)[0] + b"\n")  # no end line
    checked, refused, runs, export, gc = cli_all(
        ["import", "--db", "memory:", loaded.export], ["import", "--db", "memory:", bad],
        ["runs", "--db", "memory:"], ["export", "--db", "memory:"],
        ["gc", "--db", "memory:", "--apply"])
    text = ok(checked)
    assert "the export is valid" in text and "nothing was kept" in text
    assert "2 run(s)" in text
    assert refused.returncode == 3
    assert_one_line_error(refused, "export_malformed")
    for result in (runs, export, gc):
        assert result.returncode == 2
        assert_one_line_error(result, "usage")
        assert "memory:" in err(result)


# the password

def test_a_dsn_password_is_never_printed(loaded: Loaded, tmp_path: Path) -> None:
    target, password = loaded.target, loaded.password
    run = str(loaded.recorded)
    unreachable = f"postgresql://someone:{password}@127.0.0.1:1/db"
    query_form = f"postgresql://someone@127.0.0.1:1/db?password={password}"
    commands: list[list[str]] = [
        ["runs"], ["show", run], ["facts", run, "--values"], ["verify"], ["stats"],
        ["gc"], ["export", "-o", str(tmp_path / "e.jsonl")],
        ["import", str(loaded.export)], ["backup", str(tmp_path / "b.db")],
        ["push", str(tmp_path / "pushed.db")], ["show", "ffffffff"],
        ["runs", "--db", unreachable], ["runs", "--db", query_form],
        ["runs", "--db", target.replace("#schema=", "#schema=Not-Valid")],
        ["runs", "--db", target.replace("#schema=", "#other=")],
        ["pull", unreachable], ["push", query_form], ["ui", "--port", "70000"],
        [target], ["runs", target], ["backup", target, target],
    ]
    results = cli_all(*commands, env=env(MFM_STORE_DB=target))
    helps = cli_all(["--help"], *([c, "--help"] for c in ("runs", "backup", "push", "pull",
                                                          "ui", "import")),
                    env=env(MFM_STORE_DB=target))
    for command, result in zip(commands + [["help"]] * len(helps), results + helps,
                               strict=True):
        text = (result.stdout + result.stderr).decode("utf-8", "replace")
        assert password not in text, (command, text)
        assert "Traceback" not in text, (command, text)
    seen = [(c, r.returncode, err(r)) for c, r in zip(commands, results, strict=True)]
    assert [code for _, code, _ in seen] == [0] * 10 + [4, 3, 3, 2, 2, 3, 3, 2, 2, 2, 2], seen
    # The errors still name the store, without its password.
    assert "postgresql://someone@127.0.0.1:1/db" in err(results[11])
    assert ":***@" in err(results[-3]) and "invalid choice" in err(results[-3])


def test_a_password_given_as_a_url_parameter_is_never_printed(loaded: Loaded,
                                                              tmp_path: Path) -> None:
    base, _, schema = loaded.target.partition("#schema=")
    parts = urlsplit(base)
    # The server's own password moved into the query (the marker for the test server).
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = f"{parts.query}&" if parts.query else ""
    target = urlunsplit(parts._replace(netloc=netloc,
                                       query=f"{query}password={loaded.password}"))
    target += f"#schema={schema}"
    assert loaded.password in target and f":{loaded.password}@" not in target
    commands: list[list[str]] = [
        ["runs", "--db", target], ["verify", "--db", target],
        ["backup", "--db", target, str(tmp_path / "b.db")],
        ["push", "--db", str(loaded.db), target],
        ["pull", target, "--db", str(tmp_path / "pulled.db")],
        ["show", "ffffffff", "--db", target]]
    results = cli_all(*commands)
    for command, result in zip(commands, results, strict=True):
        text = (result.stdout + result.stderr).decode("utf-8", "replace")
        assert loaded.password not in text, (command, text)
    assert [r.returncode for r in results] == [0, 0, 0, 0, 0, 4], \
        [err(r) for r in results]
    assert "password=***" in out(results[2]) + out(results[3])


# push, pull and ui as mfm-store commands

def test_push_and_pull_between_a_file_and_postgres(loaded: Loaded, tmp_path: Path) -> None:
    centre = pg_target()
    pushed = ok(cli("push", "--db", loaded.db, centre, "--json"))
    report = json.loads(pushed)
    assert report["runs_added"] == 2 and not report["problems"]
    laptop = tmp_path / "laptop.db"
    pulled = ok(cli("pull", centre, "--db", laptop, "--run", str(loaded.recorded)[:8]))
    assert pulled.startswith("pull from postgresql://")
    ours, theirs = cli_all(["export", "--db", laptop],
                           ["export", "--db", loaded.db, "--run", str(loaded.recorded)])
    assert ours.returncode == 0 and ours.stdout == theirs.stdout
    again = json.loads(ok(cli("push", "--db", loaded.db, centre, "--json")))
    assert again["events_copied"] == 0 and again["runs_unchanged"] == 2


def test_ui_serves_a_postgres_store_without_printing_its_password(loaded: Loaded) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mfm_store", "ui", "--db", loaded.target],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, line + proc.stdout.read()
        assert loaded.password not in line
        url = line.split(" at ", 1)[1].split()[0]
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200
        assert str(loaded.recorded)[:8] in page.text and loaded.password not in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and loaded.password not in rest


async def _put_unreferenced(target: str) -> str:
    async with open_store(target) as store:
        return await store.put(ArtifactKind.OUTPUT, b"unreferenced")


def test_commands_accept_postgres_scheme_and_env_variable(loaded: Loaded) -> None:
    target = fresh_import(loaded)
    short = target.replace("postgresql://", "postgres://", 1)
    aid = asyncio.run(_put_unreferenced(short))
    by_env, by_flag = cli_all(["artifact", aid], ["artifact", aid, "--db", short],
                              env=env(MFM_STORE_DB=short))
    assert by_env.stdout == by_flag.stdout == b"unreferenced"
    assert RunId.parse(json.loads(ok(cli("runs", "--json", "--db", short)))[0]["run_id"])
