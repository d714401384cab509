-- A run's journal write (activities/connectors/http_journal.py Journal.flush) and its request's close
-- are ordered on the request's row, so no row is left once the request has closed.
--
-- Before, the write read `closed_at` without waiting for a close in flight: the close's transaction
-- had updated the row and its trigger (0036) deleted the journal's rows, not yet committed; the
-- write read the request open, inserted, and its rows (records as the service listed them, sealed)
-- outlived the close until the weekly clean-up (Journal.open, 7 days).
--
-- Now the write locks the request's row FOR SHARE before it reads it: a close in flight (its UPDATE
-- holds the row) is waited for and then read closed, and a close that comes after waits for the
-- write's commit, so that its trigger's DELETE takes the rows. The close's transaction takes no
-- journal lock (0038's advisory lock, which a task-ending result holds before the audit chain's
-- head): had it taken one, a close holding the chain's head could wait for a result holding that
-- lock and waiting for the head. The write takes its locks in one order (the advisory lock shared,
-- then the row), the row lock conflicts with nothing a task result takes (its foreign keys' KEY
-- SHARE), and nothing that holds the row waits for the advisory lock: no cycle.
CREATE OR REPLACE FUNCTION http_run_journal_refusal(p_request uuid, p_system text, p_action text,
                                                    p_attempt integer, p_ended text[]) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(http_run_journal_lock(p_request, p_system));
    -- Waits for a close in flight; READ COMMITTED reads the row's latest version once it may.
    PERFORM 1 FROM dsr_requests WHERE id = p_request FOR SHARE;
    IF EXISTS (SELECT 1 FROM dsr_requests WHERE id = p_request AND closed_at IS NOT NULL) THEN
        RETURN 'closed';
    END IF;
    IF EXISTS (SELECT 1 FROM system_tasks WHERE request_id = p_request AND system = p_system AND action = p_action
                                            AND status = ANY (p_ended) AND attempt >= p_attempt) THEN
        RETURN 'ended';
    END IF;
    RETURN NULL;
END;
$$;
