-- mfm_store PostgreSQL schema version 2: the one documented deletion path (prune; see README,
-- "Keeping the file small").
--
-- The append-only triggers now let a DELETE of events and fact bindings through inside a
-- transaction that set mfm.prune = 'on' (SET LOCAL: it ends with the transaction), which only
-- the prune transaction does; UPDATE and TRUNCATE stay refused. Run rows get the same guard,
-- and a row trigger refuses deleting a run that is still running, whatever the setting.

CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('mfm.prune', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% are append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER runs_deleted_by_prune_only BEFORE DELETE OR TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE FUNCTION refuse_running_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'running' THEN
        RAISE EXCEPTION 'run % is running: it cannot be pruned', OLD.run_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER runs_finished_only BEFORE DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION refuse_running_delete();
