"""Every SQL statement the SQLite store runs: fixed text with placeholders, one name each."""

RUN_HEAD = "SELECT run_pk, head_seq FROM runs WHERE run_id = ?"
RUN_INSERT = (
    "INSERT INTO runs (run_id, head_seq, created_ms, updated_ms) VALUES (?, 0, ?, ?)"
)
RUN_ADVANCE = (
    "UPDATE runs SET head_seq = ?, updated_ms = ?, op_id = coalesce(?, op_id),"
    " status = coalesce(?, status) WHERE run_pk = ?"
)
RUN_MOVE_HEAD = "UPDATE runs SET head_seq = ?, updated_ms = ? WHERE run_pk = ? AND head_seq = ?"
RUN_LIST = (
    "SELECT run_id, op_id, status, head_seq, created_ms, updated_ms FROM runs ORDER BY run_pk"
)

EVENT_INSERT = (
    "INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
EVENT_RANGE = (
    "SELECT e.seq, e.ts_millis, e.checksum, e.body FROM events AS e"
    " WHERE e.run_pk = (SELECT run_pk FROM runs WHERE run_id = ?) AND e.seq BETWEEN ? AND ?"
    " ORDER BY e.seq LIMIT ?"
)

BINDING_GET = "SELECT payload_id, seq FROM fact_bindings WHERE run_pk = ? AND fact_key = ?"
BINDING_INSERT = (
    "INSERT INTO fact_bindings (run_pk, fact_key, payload_id, seq) VALUES (?, ?, ?, ?)"
)
BINDING_GET_BY_RUN_ID = (
    "SELECT b.payload_id FROM fact_bindings AS b JOIN runs AS r USING (run_pk)"
    " WHERE r.run_id = ? AND b.fact_key = ?"
)
BINDINGS_OF_RUN = (
    "SELECT b.fact_key, b.payload_id FROM fact_bindings AS b JOIN runs AS r USING (run_pk)"
    " WHERE r.run_id = ?"
)

ARTIFACT_INSERT = (
    "INSERT INTO artifacts (id, kind, size, checksum, created_ms, data) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO NOTHING"
)
ARTIFACT_GET = "SELECT checksum, data FROM artifacts WHERE id = ?"
ARTIFACT_EXISTS = "SELECT 1 FROM artifacts WHERE id = ?"
ARTIFACT_KIND = "SELECT kind FROM artifacts WHERE id = ?"

VERIFY_RUNS = "SELECT run_pk, run_id, head_seq FROM runs ORDER BY run_pk"
VERIFY_EVENTS = (
    "SELECT run_pk, seq, checksum, body FROM events ORDER BY run_pk, seq"
)
VERIFY_EVENT_AT = "SELECT checksum, body FROM events WHERE run_pk = ? AND seq = ?"
VERIFY_BINDINGS = (
    "SELECT b.run_pk, r.run_id, b.fact_key, b.payload_id, b.seq,"
    " EXISTS (SELECT 1 FROM artifacts WHERE id = b.payload_id)"
    " FROM fact_bindings AS b JOIN runs AS r USING (run_pk)"
)
VERIFY_ARTIFACTS = "SELECT id, size, checksum, data FROM artifacts"
QUICK_CHECK = "PRAGMA quick_check"

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
BACKUP_COPY = (
    "INSERT INTO main.runs (run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms)"
    " SELECT run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms FROM source.runs"
    " ORDER BY run_pk",
    # Each run's events together, in seq order: what a replay of the copy reads.
    "INSERT INTO main.events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    " SELECT run_pk, seq, ts_millis, kind, name, checksum, body FROM source.events"
    " ORDER BY run_pk, seq",
    "INSERT INTO main.fact_bindings (run_pk, fact_key, payload_id, seq)"
    " SELECT run_pk, fact_key, payload_id, seq FROM source.fact_bindings",
    "INSERT INTO main.artifacts (id, kind, size, checksum, created_ms, data)"
    " SELECT id, kind, size, checksum, created_ms, data FROM source.artifacts",
)
