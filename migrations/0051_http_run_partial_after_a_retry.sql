-- What a request's close kept of a task's runs (0049's trigger) stays on record when a later
-- attempt's result comes after the close.
--
-- The trigger keeps the count on the task's row as it stands, whose `attempt` is that of the last
-- result stored: a staff retry under way when the request closed (attempt 2, going on from attempt
-- 1's rows, with no result of its own stored yet) leaves it at 1. `http_run_partial` looked for a
-- kept count at the result's own attempt only: the retry's result (its activity failed after the
-- close, recorded needing staff) found none, the journal being gone, and stored NULL over it: the
-- record, the evidence pack and the letters said nothing had been changed there.
--
-- An attempt goes on from the rows of the attempts before it (activities/connectors/http_journal.py),
-- so what any of them counted is counted by it too: the kept count of an attempt up to `p_attempt`
-- is one of its own.
CREATE OR REPLACE FUNCTION http_run_partial(p_request uuid, p_system text, p_action text, p_attempt integer,
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
          WHERE request_id = p_request AND system = p_system AND action = p_action AND attempt <= p_attempt));
END;
$$;
