"""Every SQL statement the SQLite store runs: fixed text with placeholders, one name each."""

RUN_HEAD = "SELECT run_pk, head_seq FROM runs WHERE run_id = ?"
# Every write of a run row sets its checksum, computed by the writer from the row's values (a
# new run's row gets it from the RUN_ADVANCE that always follows in the same operation).
RUN_STATE = "SELECT run_pk, head_seq, op_id, status, created_ms FROM runs WHERE run_id = ?"
RUN_INSERT = (
    "INSERT INTO runs (run_id, head_seq, created_ms, updated_ms, checksum)"
    " VALUES (?, 0, ?, ?, 0)"
)
RUN_ADVANCE = (
    "UPDATE runs SET head_seq = ?, updated_ms = ?, op_id = ?, status = ?, checksum = ?"
    " WHERE run_pk = ?"
)
# Moves the head only if nobody else did: op_id and status change only with the head, so the
# writer's cached values for that head are the row's.
RUN_MOVE_HEAD = (
    "UPDATE runs SET head_seq = ?, updated_ms = ?, checksum = ? WHERE run_pk = ? AND head_seq = ?"
)
_RUN_COLUMNS = "run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms, "
# Reads, by schema version: files before version 3 have no run or binding checksums.
RUN_READ = {
    3: "SELECT " + _RUN_COLUMNS + "checksum FROM runs WHERE run_id = ?",
    2: "SELECT " + _RUN_COLUMNS + "NULL FROM runs WHERE run_id = ?",
}
# list_runs pages (creation order = run_pk order); LIMIT -1 is no limit.
RUN_PK = "SELECT run_pk FROM runs WHERE run_id = ?"
RUN_PAGE = {
    3: "SELECT " + _RUN_COLUMNS + "checksum FROM runs WHERE run_pk > ? ORDER BY run_pk LIMIT ?",
    2: "SELECT " + _RUN_COLUMNS + "NULL FROM runs WHERE run_pk > ? ORDER BY run_pk LIMIT ?",
}
RUN_PAGE_NEWEST = {
    3: "SELECT " + _RUN_COLUMNS + "checksum FROM runs WHERE run_pk < ?"
       " ORDER BY run_pk DESC LIMIT ?",
    2: "SELECT " + _RUN_COLUMNS + "NULL FROM runs WHERE run_pk < ? ORDER BY run_pk DESC LIMIT ?",
}

EVENT_INSERT = (
    "INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
EVENT_RANGE = (
    "SELECT e.seq, e.ts_millis, e.kind, e.name, e.checksum, e.body FROM events AS e"
    " WHERE e.run_pk = (SELECT run_pk FROM runs WHERE run_id = ?) AND e.seq BETWEEN ? AND ?"
    " ORDER BY e.seq LIMIT ?"
)

BINDING_GET = "SELECT payload_id, seq FROM fact_bindings WHERE run_pk = ? AND fact_key = ?"
BINDING_INSERT = (
    "INSERT INTO fact_bindings (run_pk, fact_key, payload_id, seq, checksum)"
    " VALUES (?, ?, ?, ?, ?)"
)
BINDING_GET_BY_RUN_ID = {
    3: "SELECT b.fact_key, b.payload_id, b.seq, b.checksum FROM fact_bindings AS b"
       " JOIN runs AS r USING (run_pk) WHERE r.run_id = ? AND b.fact_key = ?",
    2: "SELECT b.fact_key, b.payload_id, b.seq, NULL FROM fact_bindings AS b"
       " JOIN runs AS r USING (run_pk) WHERE r.run_id = ? AND b.fact_key = ?",
}
BINDINGS_OF_RUN = {
    3: "SELECT b.fact_key, b.payload_id, b.seq, b.checksum FROM fact_bindings AS b"
       " JOIN runs AS r USING (run_pk) WHERE r.run_id = ?",
    2: "SELECT b.fact_key, b.payload_id, b.seq, NULL FROM fact_bindings AS b"
       " JOIN runs AS r USING (run_pk) WHERE r.run_id = ?",
}

ARTIFACT_INSERT = (
    "INSERT INTO artifacts (id, kind, size, checksum, created_ms, data) VALUES (?, ?, ?, ?, ?, ?)"
    # A put of stored bytes makes them young again: gc counts age from the last put.
    " ON CONFLICT (id) DO UPDATE SET created_ms = excluded.created_ms"
    " WHERE excluded.created_ms > artifacts.created_ms"
)
ARTIFACT_GET = "SELECT kind, size, checksum, data FROM artifacts WHERE id = ?"
ARTIFACT_EXISTS = "SELECT 1 FROM artifacts WHERE id = ?"
ARTIFACT_KIND = "SELECT kind FROM artifacts WHERE id = ?"
ARTIFACTS_PRESENT = (
    "SELECT a.id FROM json_each(?) AS j JOIN artifacts AS a ON a.id = j.value"
)
ARTIFACT_KINDS = (
    "SELECT a.id, a.kind FROM json_each(?) AS j JOIN artifacts AS a ON a.id = j.value"
    " ORDER BY a.id"
)

# verify's other statements are in _verify_steps.py, export's in _snapshot.py.
VERIFY_ARTIFACTS = "SELECT id, kind, size, checksum, data FROM artifacts"
QUICK_CHECK = "PRAGMA quick_check"
INTEGRITY_CHECK = "PRAGMA integrity_check"

STATS = (
    "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM events),"
    " (SELECT count(*) FROM fact_bindings), (SELECT count(*) FROM artifacts),"
    " (SELECT coalesce(sum(size), 0) FROM artifacts)"
)
ARTIFACT_IDS = "SELECT id FROM artifacts ORDER BY id"
ARTIFACT_META = "SELECT id, kind, size, created_ms FROM artifacts ORDER BY id"
EVENT_BODIES = "SELECT body FROM events"
RUN_HEADS = "SELECT run_pk, head_seq FROM runs"
EVENT_BODIES_AFTER = "SELECT body FROM events WHERE run_pk = ? AND seq > ?"
BINDING_PAYLOADS = "SELECT payload_id FROM fact_bindings"
BINDING_PAYLOADS_AFTER = "SELECT payload_id FROM fact_bindings WHERE run_pk = ? AND seq > ?"
ARTIFACT_DELETE = "DELETE FROM artifacts WHERE id = ? AND created_ms <= ?"
BACKUP_ATTACH = "ATTACH DATABASE ? AS source"
BACKUP_DETACH = "DETACH DATABASE source"
BACKUP_SOURCE_VERSION = "PRAGMA source.user_version"
BACKUP_COPY = (
    "INSERT INTO main.runs"
    " (run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms, checksum)"
    " SELECT run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms, checksum"
    " FROM source.runs ORDER BY run_pk",
    # Each run's events together, in seq order: what a replay of the copy reads.
    "INSERT INTO main.events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    " SELECT run_pk, seq, ts_millis, kind, name, checksum, body FROM source.events"
    " ORDER BY run_pk, seq",
    "INSERT INTO main.fact_bindings (run_pk, fact_key, payload_id, seq, checksum)"
    " SELECT run_pk, fact_key, payload_id, seq, checksum FROM source.fact_bindings",
    "INSERT INTO main.artifacts (id, kind, size, checksum, created_ms, data)"
    " SELECT id, kind, size, checksum, created_ms, data FROM source.artifacts",
)
# A copy of a file older than version 3 (opened read-only as it is) gets version-3 checksums,
# computed as the migration computes them.
BACKUP_COPY_LEGACY = (
    "INSERT INTO main.runs"
    " (run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms, checksum)"
    " SELECT run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms,"
    " mfm_run_sum(run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms)"
    " FROM source.runs ORDER BY run_pk",
    "INSERT INTO main.events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    " SELECT e.run_pk, e.seq, e.ts_millis, e.kind, e.name, mfm_migrated_event_sum("
    "(SELECT r.run_id FROM source.runs AS r WHERE r.run_pk = e.run_pk),"
    " e.seq, e.ts_millis, e.kind, e.name, e.checksum, e.body), e.body"
    " FROM source.events AS e ORDER BY e.run_pk, e.seq",
    "INSERT INTO main.fact_bindings (run_pk, fact_key, payload_id, seq, checksum)"
    " SELECT b.run_pk, b.fact_key, b.payload_id, b.seq, mfm_binding_sum("
    "(SELECT r.run_id FROM source.runs AS r WHERE r.run_pk = b.run_pk),"
    " b.fact_key, b.payload_id, b.seq) FROM source.fact_bindings AS b",
    "INSERT INTO main.artifacts (id, kind, size, checksum, created_ms, data)"
    " SELECT id, kind, size, mfm_migrated_artifact_sum(id, kind, size, checksum, data),"
    " created_ms, data FROM source.artifacts",
)
