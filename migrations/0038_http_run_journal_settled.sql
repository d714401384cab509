-- A SaaS run's journal (0036, 0037) is written only while its task is unsettled, and a result that
-- ends the task takes it whatever the order of the two (activities/connectors/http_journal.py).
--
-- What 0036 and 0037 say of its clearing no longer holds (an applied migration is not edited: its
-- checksum is kept): the rows do not go with any task result (0036), nor only once a run wrote its
-- `complete` row (0037). A result that ends the task (done, not_found: the run's own, or staff's
-- resolution however far the run got) takes the rows of all the task's attempts up to its own; one
-- needing staff keeps them for the retry (activities/task_results.py). A request's close still takes
-- all of its rows (0036's trigger), and Journal.open those of a request no longer open after a week.

-- The lock that orders a run's writes against the result that ends its task: a write holds it
-- shared, the result (in its transaction, before its statement) exclusively.
CREATE FUNCTION http_run_journal_lock(p_request uuid, p_system text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS
$$ SELECT hashtextextended('http_run_journal:' || p_request::text || ':' || p_system, 0) $$;

-- Called by a run's write, in its statement: why it must write nothing ('closed': the request;
-- 'ended': a result of this attempt or a later one ended the task, `p_ended` its statuses), or
-- NULL. Volatile, so each query below reads what is committed once the lock is held, not the
-- calling statement's snapshot: a result that ended the task while the write waited is seen.
CREATE FUNCTION http_run_journal_refusal(p_request uuid, p_system text, p_action text, p_attempt integer,
                                         p_ended text[]) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(http_run_journal_lock(p_request, p_system));
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

-- 0037's `complete` row, written when a run ended, was read by nothing: what ends a journal is its
-- task's result, and what an attempt goes on from is its items.
DELETE FROM http_run_journal WHERE state = 'complete';
ALTER TABLE http_run_journal DROP CONSTRAINT http_run_journal_state_check;
ALTER TABLE http_run_journal ADD CONSTRAINT http_run_journal_state_check
    CHECK (state IN ('read', 'sending', 'answered'));
