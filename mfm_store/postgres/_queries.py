"""Every SQL statement the PostgreSQL store runs: fixed text with bound parameters only.

Table names are unqualified: each connection's ``search_path`` is the store's schema. Every
write is one statement (its CTEs check and write together), sent on an autocommit connection:
one round trip, one implicit transaction, nothing written unless every check passed.
"""

RUN_HEAD = "SELECT head_seq FROM runs WHERE run_id = %s"
RUN_LIST = (
    "SELECT run_id, op_id, status, head_seq, created_ms, updated_ms FROM runs ORDER BY run_pk"
)
# list_runs pages (creation order = run_pk order), one round trip: the first column says
# whether the run named by %(after)s exists (NULL after: always); run columns are NULL when
# the page is empty. A NULL limit is no limit.
_RUN_PAGE = (
    "SELECT f.found, r.run_id, r.op_id, r.status, r.head_seq, r.created_ms, r.updated_ms"
    " FROM (SELECT a.pk IS NOT NULL OR %(after)s::text IS NULL AS found, a.pk FROM"
    " (SELECT (SELECT run_pk FROM runs WHERE run_id = %(after)s::text) AS pk) AS a) AS f"
    " LEFT JOIN LATERAL (SELECT * FROM runs WHERE f.found AND (f.pk IS NULL OR run_pk {op} f.pk)"
    " ORDER BY run_pk {order} LIMIT %(limit)s) AS r ON true"
)
RUN_PAGE = _RUN_PAGE.format(op=">", order="ASC")
RUN_PAGE_NEWEST = _RUN_PAGE.format(op="<", order="DESC")

# The events of one append as parallel arrays (one statement whatever their number).
_EVENTS = (
    "unnest(%(seqs)s::bigint[], %(ts)s::bigint[], %(kinds)s::text[], %(names)s::text[],"
    " %(sums)s::bigint[], %(bodies)s::bytea[])"
)
_INSERT_EVENTS = (
    "ev AS (INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    f" SELECT moved.run_pk, u.* FROM moved, {_EVENTS} AS u)"
)
_INSERT_BINDINGS = (
    "fb AS (INSERT INTO fact_bindings (run_pk, fact_key, payload_id, seq, checksum)"
    " SELECT moved.run_pk, n.k, n.p, n.s, n.c FROM moved,"
    " unnest(%(keys)s::text[], %(pids)s::text[], %(bseqs)s::bigint[], %(bsums)s::bigint[])"
    " AS n(k, p, s, c) ON CONFLICT (run_pk, fact_key) DO NOTHING)"
)
# The first artifact the events name that the store lacks (they must be there first).
_MISSING = (
    "missing AS (SELECT x.id, x.s FROM unnest(%(refs)s::text[], %(rseqs)s::bigint[]) AS x(id, s)"
    " WHERE NOT EXISTS (SELECT 1 FROM artifacts AS a WHERE a.id = x.id) ORDER BY x.s LIMIT 1)"
)

# Append to a new run (expected head 0): the run row is created with its events. A concurrent
# creator of the same run makes ours insert nothing (the unique run_id decides).
# Result: (run_pk written or NULL, head seen).
APPEND_NEW_RUN = (
    "WITH " + _MISSING + ","
    " moved AS (INSERT INTO runs (run_id, op_id, status, head_seq, created_ms, updated_ms)"
    " SELECT %(rid)s, %(op)s, coalesce(%(status)s, 'running'), %(new)s, %(now)s, %(now)s"
    " WHERE NOT EXISTS (SELECT 1 FROM missing)"
    " ON CONFLICT (run_id) DO NOTHING RETURNING run_pk), "
    + _INSERT_EVENTS + ", " + _INSERT_BINDINGS +
    " SELECT (SELECT run_pk FROM moved), (SELECT head_seq FROM runs WHERE run_id = %(rid)s),"
    " NULL::text, NULL::text, (SELECT id FROM missing), (SELECT s FROM missing)"
)

# Append to an existing run, binding no fact: the conditional head update is the check.
APPEND_PLAIN = (
    "WITH moved AS (UPDATE runs SET head_seq = %(new)s, updated_ms = %(now)s,"
    " op_id = coalesce(%(op)s, op_id), status = coalesce(%(status)s, status)"
    " WHERE run_id = %(rid)s AND head_seq = %(expected)s RETURNING run_pk), "
    + _INSERT_EVENTS +
    " SELECT (SELECT run_pk FROM moved), (SELECT head_seq FROM runs WHERE run_id = %(rid)s),"
    " NULL::text, NULL::text, NULL::text, NULL::bigint"
)

# The common case, one event: scalars instead of arrays (cheaper to send).
APPEND_PLAIN_ONE = (
    "WITH moved AS (UPDATE runs SET head_seq = %(new)s, updated_ms = %(now)s,"
    " op_id = coalesce(%(op)s, op_id), status = coalesce(%(status)s, status)"
    " WHERE run_id = %(rid)s AND head_seq = %(expected)s RETURNING run_pk),"
    " ev AS (INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    " SELECT run_pk, %(seq)s, %(ts1)s::bigint, %(kind)s, %(name)s, %(sum)s, %(body)s FROM moved)"
    " SELECT (SELECT run_pk FROM moved), (SELECT head_seq FROM runs WHERE run_id = %(rid)s),"
    " NULL::text, NULL::text, NULL::text, NULL::bigint"
)

# Append to an existing run with fact_recorded events or artifact references: refused if a key
# is bound to another payload or a named artifact is missing. The bindings read are those of
# the statement's snapshot, so the head must be the expected one both in that snapshot and at
# the update: then no binding was committed between (every binding moves its run's head).
# Result adds the first conflicting (key, payload) and the first missing (artifact, seq).
APPEND_CHECKED = (
    "WITH r AS (SELECT run_pk, head_seq FROM runs WHERE run_id = %(rid)s),"
    " conflict AS (SELECT b.fact_key, b.payload_id FROM fact_bindings AS b JOIN r USING (run_pk)"
    "  JOIN unnest(%(keys)s::text[], %(pids)s::text[]) AS n(k, p) ON b.fact_key = n.k"
    "  WHERE b.payload_id <> n.p LIMIT 1), " + _MISSING + ","
    " moved AS (UPDATE runs SET head_seq = %(new)s, updated_ms = %(now)s,"
    "  op_id = coalesce(%(op)s, op_id), status = coalesce(%(status)s, status)"
    "  WHERE run_id = %(rid)s AND head_seq = %(expected)s"
    "  AND (SELECT head_seq FROM r) = %(expected)s AND NOT EXISTS (SELECT 1 FROM conflict)"
    "  AND NOT EXISTS (SELECT 1 FROM missing) RETURNING run_pk), "
    + _INSERT_EVENTS + ", " + _INSERT_BINDINGS +
    " SELECT (SELECT run_pk FROM moved), (SELECT head_seq FROM r),"
    " (SELECT fact_key FROM conflict), (SELECT payload_id FROM conflict),"
    " (SELECT id FROM missing), (SELECT s FROM missing)"
)

# A fact binding at head + 1, where the caller guesses the head (%(g)s) to compute the event's
# checksum. Writes only if the key is unbound, the payload exists (or comes with the
# statement) and the head is the guess, in the snapshot and at the update. Result: (run_pk
# written or NULL, head seen, bound payload, bound seq, payload and declared refs present).
_BIND_CHECKS = (
    "WITH r AS (SELECT run_pk, head_seq FROM runs WHERE run_id = %(rid)s),"
    " b AS (SELECT fb.payload_id, fb.seq FROM fact_bindings AS fb JOIN r USING (run_pk)"
    "  WHERE fb.fact_key = %(key)s),"
    " present AS (SELECT (%(has_data)s OR EXISTS (SELECT 1 FROM artifacts WHERE id = %(pid)s))"
    "  AND (%(nrefs)s = 0 OR (SELECT count(*) FROM artifacts"
    "   WHERE id = ANY(%(refs)s::text[])) = %(nrefs)s) AS ok),"
)
_BIND_WRITES = (
    " art AS (INSERT INTO artifacts (id, kind, size, checksum, created_ms, data)"
    "  SELECT %(pid)s, %(akind)s, %(asize)s, %(asum)s, %(now)s, %(data)s::bytea FROM moved"
    "  WHERE %(has_data)s ON CONFLICT (id) DO NOTHING),"
    " aged AS (UPDATE artifacts SET created_ms = %(now)s FROM moved"
    "  WHERE %(has_data)s AND id = %(pid)s AND created_ms < %(now)s - 1000),"
    " ev AS (INSERT INTO events (run_pk, seq, ts_millis, kind, name, checksum, body)"
    "  SELECT run_pk, %(seq)s, NULL, 'Domain', 'fact_recorded', %(sum)s, %(body)s FROM moved),"
    " fb AS (INSERT INTO fact_bindings (run_pk, fact_key, payload_id, seq, checksum)"
    "  SELECT run_pk, %(key)s, %(pid)s, %(seq)s, %(bsum)s FROM moved)"
    " SELECT (SELECT run_pk FROM moved), (SELECT head_seq FROM r), (SELECT payload_id FROM b),"
    " (SELECT seq FROM b), (SELECT ok FROM present)"
)
BIND_EXISTING = (
    _BIND_CHECKS +
    " moved AS (UPDATE runs SET head_seq = %(seq)s, updated_ms = %(now)s"
    "  WHERE run_id = %(rid)s AND head_seq = %(g)s AND (SELECT head_seq FROM r) = %(g)s"
    "  AND NOT EXISTS (SELECT 1 FROM b) AND (SELECT ok FROM present) RETURNING run_pk),"
    + _BIND_WRITES
)
BIND_NEW_RUN = (
    _BIND_CHECKS +
    " moved AS (INSERT INTO runs (run_id, head_seq, created_ms, updated_ms)"
    "  SELECT %(rid)s, %(seq)s, %(now)s, %(now)s"
    "  WHERE NOT EXISTS (SELECT 1 FROM r) AND (SELECT ok FROM present)"
    "  ON CONFLICT (run_id) DO NOTHING RETURNING run_pk),"
    + _BIND_WRITES
)
# The contended path: hold the run's row while the head is read (a run created empty here
# only becomes visible with its first event).
RUN_LOCK = "SELECT head_seq FROM runs WHERE run_id = %s FOR UPDATE"
RUN_CREATE_EMPTY = (
    "INSERT INTO runs (run_id, head_seq, created_ms, updated_ms) VALUES (%s, 0, %s, %s)"
    " ON CONFLICT (run_id) DO NOTHING"
)

EVENT_RANGE = (
    "SELECT e.seq, e.ts_millis, e.kind, e.name, e.checksum, e.body FROM events AS e"
    " WHERE e.run_pk = (SELECT run_pk FROM runs WHERE run_id = %s) AND e.seq BETWEEN %s AND %s"
    " ORDER BY e.seq LIMIT %s"
)

BINDING_GET_BY_RUN_ID = (
    "SELECT b.fact_key, b.payload_id, b.seq, b.checksum FROM fact_bindings AS b"
    " JOIN runs AS r USING (run_pk) WHERE r.run_id = %s AND b.fact_key = %s"
)
BINDINGS_OF_RUN = (
    "SELECT b.fact_key, b.payload_id, b.seq, b.checksum FROM fact_bindings AS b"
    " JOIN runs AS r USING (run_pk) WHERE r.run_id = %s"
)

# A put of stored bytes makes them young again: gc counts age from the last put. The refresh
# is a plain UPDATE of rows older than a second, not ON CONFLICT DO UPDATE, which would lock
# the row even when nothing changes: writers of the same popular bytes (one fact answer in
# many runs) would then wait for each other's commits.
ARTIFACT_INSERT = (
    "WITH ins AS (INSERT INTO artifacts (id, kind, size, checksum, created_ms, data)"
    " VALUES (%(id)s, %(kind)s, %(size)s, %(sum)s, %(now)s, %(data)s)"
    " ON CONFLICT (id) DO NOTHING RETURNING 1)"
    " UPDATE artifacts SET created_ms = %(now)s WHERE id = %(id)s"
    " AND created_ms < %(now)s - 1000 AND NOT EXISTS (SELECT 1 FROM ins)"
)
ARTIFACT_GET = "SELECT kind, size, checksum, data FROM artifacts WHERE id = %s"
ARTIFACT_EXISTS = "SELECT 1 FROM artifacts WHERE id = %s"
ARTIFACTS_PRESENT = "SELECT id FROM artifacts WHERE id = ANY(%s::text[])"
ARTIFACT_KIND = "SELECT kind FROM artifacts WHERE id = %s"
ARTIFACT_META = "SELECT id, kind, size, created_ms FROM artifacts ORDER BY id"

# The schema's own objects (tables, views, triggers) as (kind, name).
SCHEMA_OBJECTS = (
    "SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END, c.relname FROM pg_class AS c"
    " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'v', 'p')"
    " UNION ALL SELECT 'trigger', t.tgname FROM pg_trigger AS t JOIN pg_class AS c"
    " ON c.oid = t.tgrelid WHERE c.relnamespace = current_schema()::regnamespace"
    " AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
)
EXPECTED_OBJECTS = frozenset({
    ("table", "mfm_meta"), ("table", "runs"), ("table", "events"), ("table", "fact_bindings"),
    ("table", "artifacts"), ("view", "event_log"), ("trigger", "events_append_only"),
    ("trigger", "fact_bindings_append_only"), ("trigger", "runs_deleted_by_prune_only"),
    ("trigger", "runs_finished_only"),
})
VERIFY_RUNS = "SELECT run_pk, run_id, op_id, status, head_seq FROM runs ORDER BY run_pk"
VERIFY_EVENTS = (
    "SELECT run_pk, seq, ts_millis, kind, name, checksum, body FROM events ORDER BY run_pk, seq"
)
VERIFY_EVENT_AT = (
    "SELECT ts_millis, kind, name, checksum, body FROM events WHERE run_pk = %s AND seq = %s"
)
VERIFY_BINDINGS = (
    "SELECT b.run_pk, r.run_id, b.fact_key, b.payload_id, b.seq, b.checksum,"
    " EXISTS (SELECT 1 FROM artifacts WHERE id = b.payload_id)"
    " FROM fact_bindings AS b JOIN runs AS r USING (run_pk) ORDER BY b.run_pk, b.seq"
)
VERIFY_ARTIFACTS = "SELECT id, kind, size, checksum, data FROM artifacts ORDER BY id"

STATS = (
    "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM events),"
    " (SELECT count(*) FROM fact_bindings), (SELECT count(*) FROM artifacts),"
    " (SELECT coalesce(sum(size), 0) FROM artifacts),"
    " (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c"
    "  JOIN pg_namespace AS n ON n.oid = c.relnamespace"
    "  WHERE n.nspname = current_schema() AND c.relkind = 'r')"
)

RUN_HEADS = "SELECT run_pk, head_seq FROM runs"
EVENT_BODIES = "SELECT body FROM events"
EVENT_BODIES_AFTER = "SELECT body FROM events WHERE run_pk = %s AND seq > %s"
BINDING_PAYLOADS = "SELECT payload_id FROM fact_bindings"
BINDING_PAYLOADS_AFTER = "SELECT payload_id FROM fact_bindings WHERE run_pk = %s AND seq > %s"
# gc's delete holds off every write that could add a reference (each moves a run's head)
# for the length of its re-check; reads and puts continue.
GC_LOCK = "LOCK TABLE runs IN SHARE MODE"
ARTIFACT_DELETE = "DELETE FROM artifacts WHERE id = ANY(%s) AND created_ms <= %s"
