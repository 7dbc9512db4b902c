"""Every SQL statement the SQLite store runs: fixed text with placeholders, one name each."""

RUN_HEAD = "SELECT run_pk, head_seq FROM runs WHERE run_id = ?"
RUN_INSERT = (
    "INSERT INTO runs (run_id, head_seq, created_ms, updated_ms) VALUES (?, 0, ?, ?)"
)
RUN_ADVANCE = (
    "UPDATE runs SET head_seq = ?, updated_ms = ?, op_id = coalesce(?, op_id),"
    " status = coalesce(?, status) WHERE run_pk = ?"
)
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
