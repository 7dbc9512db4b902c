-- mfm_store schema version 2: events are stored in append order.
--
-- Version 1 clustered events by (run_pk, seq) (WITHOUT ROWID). A commit holding appends to many
-- runs then rewrote one leaf page per run, since every run's newest rows sat on a page of their
-- own. Now the table is an ordinary rowid table: rows go in at its end, so concurrent appends to
-- many runs share a few pages, and the primary key (run_pk, seq) is a unique index whose small
-- entries share pages too. Reading a run walks that index. Columns, keys and meanings are
-- unchanged; backup() writes each run's events together again (see README, "Backups").

DROP VIEW event_log;

CREATE TABLE events_v2 (
    run_pk      INTEGER NOT NULL REFERENCES runs (run_pk),
    seq         INTEGER NOT NULL,
    ts_millis   INTEGER,
    kind        TEXT    NOT NULL,
    name        TEXT,
    checksum    INTEGER NOT NULL,
    body        BLOB    NOT NULL,
    PRIMARY KEY (run_pk, seq)
) STRICT;

INSERT INTO events_v2 (run_pk, seq, ts_millis, kind, name, checksum, body)
SELECT run_pk, seq, ts_millis, kind, name, checksum, body FROM events ORDER BY run_pk, seq;

DROP TABLE events;

ALTER TABLE events_v2 RENAME TO events;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE VIEW event_log AS
SELECT r.run_id, e.seq, e.ts_millis, e.kind, e.name, length(e.body) AS body_size
FROM events AS e JOIN runs AS r USING (run_pk);
