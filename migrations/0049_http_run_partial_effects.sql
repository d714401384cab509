-- What an http system's run had changed when its task ended without success stays on record.
--
-- Before, a run that erased 1 of 3 records at a SaaS and then stopped (retries run out, staff
-- resolved the task by hand, the request withdrawn or cancelled mid-run) left its task recorded
-- with 0 changed, and its journal (0036), the only account of the change, went with the
-- resolution or the request's close: the letters, the request page, the evidence pack and the
-- audit trail said nothing was changed there, though something was.
--
-- `partial_changed`: the changes the task's runs made and counted (journal rows 'answered' and
-- counted) by the time a result other than the run's own success was stored, or by the request's
-- close. NULL: none known (the run's own `changed` is the whole run's). A count of requests that
-- changed something, not of records: a delete of a whole dataset in one request counts once.
ALTER TABLE system_tasks ADD COLUMN partial_changed integer;

-- What a result of a task's attempt `p_attempt` keeps as `partial_changed`: the changes counted in
-- the journal of its runs up to that attempt (an attempt goes on from its earlier ones' rows: an
-- item counted in any of them was changed once), or what the request's close kept of the same
-- attempt (below) once the journal has gone. `p_lock`: after the lock a result that ends the task
-- takes (0038's, taken here so that it costs no round trip more): the count then holds every
-- row written before it. Volatile, so the count reads what is committed once the lock is held.
CREATE FUNCTION http_run_partial(p_request uuid, p_system text, p_action text, p_attempt integer,
                                 p_lock boolean) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_lock THEN
        PERFORM pg_advisory_xact_lock(http_run_journal_lock(p_request, p_system));
    END IF;
    RETURN greatest(
        (SELECT count(DISTINCT (run, step, item)) FROM http_run_journal
          WHERE request_id = p_request AND system = p_system AND split_part(run, '.', 1) = p_action
            AND attempt <= p_attempt AND state = 'answered' AND counted),
        (SELECT partial_changed FROM system_tasks
          WHERE request_id = p_request AND system = p_system AND action = p_action AND attempt = p_attempt));
END;
$$;

-- A request that closes has no run left to carry on (0036): its journal goes, after what it had
-- counted is kept on the task (dsrflow/stores/requests_store.py `set_status` audits it as
-- `task.partial_effect`). A task with no result stored yet (its first run under way) gets one
-- needing attention, which says it stopped: on a closed request nothing asks staff for it.
CREATE OR REPLACE FUNCTION http_run_journal_request_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO system_tasks AS t (request_id, system, action, status, attempt, message, partial_changed)
    SELECT NEW.id, j.system, split_part(j.run, '.', 1), 'needs_attention', max(j.attempt),
           'stopped: the request was closed while its run was under way', count(DISTINCT (j.run, j.step, j.item))
      FROM http_run_journal j
     WHERE j.request_id = NEW.id AND j.state = 'answered' AND j.counted
     GROUP BY j.system, split_part(j.run, '.', 1)
    ON CONFLICT (request_id, system, action) DO UPDATE
       SET partial_changed = greatest(t.partial_changed, EXCLUDED.partial_changed), updated_at = now();
    DELETE FROM http_run_journal WHERE request_id = NEW.id;
    RETURN NULL;
END;
$$;
