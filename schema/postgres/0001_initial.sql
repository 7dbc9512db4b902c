-- mfm_store PostgreSQL schema version 1.
-- The store creates the schema (default "mfm"), then applies the numbered files in one
-- transaction under an advisory lock, with search_path set to that schema; mfm_meta then
-- records the version. The tables mirror the SQLite file (schema/0001_initial.sql): same
-- columns, same meanings, same checksums.

-- What this schema is: application = 'mfm_store' and the schema version.
CREATE TABLE mfm_meta (
    application     text    NOT NULL,
    schema_version  integer NOT NULL
);

-- One row per run. head_seq is the last event's seq; an append moves it with a conditional
-- UPDATE (WHERE head_seq = expected), which is the optimistic check. Half-empty pages keep
-- those updates HOT (no index writes). Unlike the SQLite file's, run rows carry no checksum:
-- one would cover run_pk and created_ms, which a one-statement append does not know; verify
-- checks every run row against its events instead.
CREATE TABLE runs (
    run_pk      bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      text    NOT NULL UNIQUE,
    op_id       text,
    status      text    NOT NULL DEFAULT 'running',
    head_seq    bigint  NOT NULL,
    created_ms  bigint  NOT NULL,
    updated_ms  bigint  NOT NULL
) WITH (fillfactor = 50);

-- events.run_pk and fact_bindings.run_pk name a runs row. As in the SQLite file (whose
-- REFERENCES clauses SQLite does not enforce by default), no foreign key checks them: each
-- would cost a row-locking lookup of the run per inserted row, and every write already
-- creates or moves its run's row in the same statement; verify reports orphans.

-- The event streams. body = CBOR of the event's interchange form; kind = the event variant
-- ('RunStarted', ..., or 'Domain') and name = the domain event name; checksum = the SQLite
-- file's version-3 row checksum (xxh3-64 of body, seeded with the xxh3 of the row's run_id,
-- seq, ts_millis, kind and name; signed 64-bit), computed by the library.
CREATE TABLE events (
    run_pk      bigint  NOT NULL,
    seq         bigint  NOT NULL,
    ts_millis   bigint,
    kind        text    NOT NULL,
    name        text,
    checksum    bigint  NOT NULL,
    body        bytea   NOT NULL,
    PRIMARY KEY (run_pk, seq)
);

-- First-writer-wins fact bindings: the primary key decides the winner across every process
-- and host. seq is the seq of the binding's fact_recorded event; checksum covers the run's
-- UUID, fact_key, payload_id and seq.
CREATE TABLE fact_bindings (
    run_pk      bigint  NOT NULL,
    fact_key    text    NOT NULL,
    payload_id  text    NOT NULL,
    seq         bigint  NOT NULL,
    checksum    bigint  NOT NULL,
    PRIMARY KEY (run_pk, fact_key)
);

-- Content-addressed artifacts: id = lowercase hex SHA-256 of data; kind = the first kind it
-- was stored under ('FactPayload', 'Other:name', ...); checksum = xxh3-64 of data seeded with
-- the xxh3 of (id, kind, size); created_ms = the time of the last put (gc counts age from it).
CREATE TABLE artifacts (
    id          text    PRIMARY KEY,
    kind        text    NOT NULL,
    size        bigint  NOT NULL,
    checksum    bigint  NOT NULL,
    created_ms  bigint  NOT NULL,
    data        bytea   NOT NULL
);
ALTER TABLE artifacts ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE TRIGGER fact_bindings_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON fact_bindings
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- A readable view for psql: events with their run's UUID.
CREATE VIEW event_log AS
SELECT r.run_id, e.seq, e.ts_millis, e.kind, e.name, length(e.body) AS body_size
FROM events AS e JOIN runs AS r USING (run_pk);
