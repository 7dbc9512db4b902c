-- mfm_store schema version 4: the one documented deletion path (prune; see README, "Keeping
-- the file small").
--
-- Events, fact bindings and run rows stay append-only for every write but one: the prune
-- transaction first inserts a row naming the run into prune_grants (refused unless the run is
-- finished), deletes the run's bindings, events and row, then removes the grant; the grant
-- never outlives that transaction. Any other DELETE of those tables is refused by the
-- triggers below, and every UPDATE of events and bindings still is (as before).

CREATE TABLE prune_grants (
    run_pk      INTEGER PRIMARY KEY
) STRICT;

CREATE TRIGGER prune_grants_finished_runs_only BEFORE INSERT ON prune_grants
WHEN coalesce((SELECT status FROM runs WHERE run_pk = NEW.run_pk), 'running') = 'running'
BEGIN
    SELECT RAISE(ABORT, 'only a finished run may be pruned');
END;

DROP TRIGGER events_append_only_delete;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM prune_grants WHERE run_pk = OLD.run_pk)
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

DROP TRIGGER fact_bindings_append_only_delete;

CREATE TRIGGER fact_bindings_append_only_delete BEFORE DELETE ON fact_bindings
WHEN NOT EXISTS (SELECT 1 FROM prune_grants WHERE run_pk = OLD.run_pk)
BEGIN
    SELECT RAISE(ABORT, 'fact bindings are append-only');
END;

CREATE TRIGGER runs_deleted_by_prune_only BEFORE DELETE ON runs
WHEN NOT EXISTS (SELECT 1 FROM prune_grants WHERE run_pk = OLD.run_pk)
BEGIN
    SELECT RAISE(ABORT, 'runs are deleted only by prune');
END;
