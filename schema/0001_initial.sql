-- mfm_store schema version 1.
-- Applied in one transaction on first open; the file then records PRAGMA user_version = 1 and
-- PRAGMA application_id = 0x4D464D53 ('MFMS').

-- One row per run. run_pk is a compact surrogate key used by the other tables; run_id is the
-- UUID text users see. head_seq is the last event's seq (kept in step with events by the store).
CREATE TABLE runs (
    run_pk      INTEGER PRIMARY KEY,
    run_id      TEXT    NOT NULL UNIQUE,
    op_id       TEXT,
    status      TEXT    NOT NULL DEFAULT 'running',
    head_seq    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) STRICT;

-- The event streams. body = CBOR of the event's interchange form (see README); checksum =
-- xxh3-64 of body seeded with seq, stored as a signed 64-bit integer; kind = the event variant
-- ('RunStarted', ..., or 'Domain' for domain events) and name = the domain event name.
CREATE TABLE events (
    run_pk      INTEGER NOT NULL REFERENCES runs (run_pk),
    seq         INTEGER NOT NULL,
    ts_millis   INTEGER,
    kind        TEXT    NOT NULL,
    name        TEXT,
    checksum    INTEGER NOT NULL,
    body        BLOB    NOT NULL,
    PRIMARY KEY (run_pk, seq)
) STRICT, WITHOUT ROWID;

-- First-writer-wins fact bindings; seq is the seq of the binding's fact_recorded event.
CREATE TABLE fact_bindings (
    run_pk      INTEGER NOT NULL REFERENCES runs (run_pk),
    fact_key    TEXT    NOT NULL,
    payload_id  TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (run_pk, fact_key)
) STRICT, WITHOUT ROWID;

-- Content-addressed artifacts: id = lowercase hex SHA-256 of data; checksum = xxh3-64 of data
-- (signed); kind = the first kind it was stored under ('FactPayload', 'Other:name', ...).
CREATE TABLE artifacts (
    id          TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    checksum    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    data        BLOB    NOT NULL
) STRICT;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER fact_bindings_append_only_update BEFORE UPDATE ON fact_bindings
BEGIN
    SELECT RAISE(ABORT, 'fact bindings are append-only');
END;

CREATE TRIGGER fact_bindings_append_only_delete BEFORE DELETE ON fact_bindings
BEGIN
    SELECT RAISE(ABORT, 'fact bindings are append-only');
END;

-- A readable view for the sqlite3 shell: events with their run's UUID.
CREATE VIEW event_log AS
SELECT r.run_id, e.seq, e.ts_millis, e.kind, e.name, length(e.body) AS body_size
FROM events AS e JOIN runs AS r USING (run_pk);
