-- mfm_store schema version 3: a checksum over every stored column a read returns or relies on.
--
-- events.checksum and artifacts.checksum now cover the whole row (the run's UUID, seq,
-- ts_millis, kind, name and body; the artifact's id, kind, size and data), and runs and
-- fact_bindings get a checksum column of their own (see README, "Schema"). The checksums are
-- xxh3-64, computed by functions the library registers on its connections (mfm_*); a row that
-- failed its version-2 checksum keeps failing after the migration. artifacts.created_ms now
-- means the time of the last put of those bytes (not covered by the checksum).

DROP TRIGGER events_append_only_update;
DROP TRIGGER fact_bindings_append_only_update;

UPDATE events SET checksum = mfm_migrated_event_sum(
    (SELECT r.run_id FROM runs AS r WHERE r.run_pk = events.run_pk),
    seq, ts_millis, kind, name, checksum, body);

UPDATE artifacts SET checksum = mfm_migrated_artifact_sum(id, kind, size, checksum, data);

ALTER TABLE fact_bindings ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0;

UPDATE fact_bindings SET checksum = mfm_binding_sum(
    (SELECT r.run_id FROM runs AS r WHERE r.run_pk = fact_bindings.run_pk),
    fact_key, payload_id, seq);

ALTER TABLE runs ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0;

UPDATE runs SET checksum = mfm_run_sum(
    run_pk, run_id, op_id, status, head_seq, created_ms, updated_ms);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER fact_bindings_append_only_update BEFORE UPDATE ON fact_bindings
BEGIN
    SELECT RAISE(ABORT, 'fact bindings are append-only');
END;
