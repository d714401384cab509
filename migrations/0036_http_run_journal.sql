-- What one action of an http system has done so far, item by item (activities/connectors/
-- http_journal.py): the records each read found, and each change's request and answer. A run of
-- thousands of per-item requests under a service's rate limit outlasts one activity attempt; the
-- next attempt reads this instead of starting again from the first page, and sends only what is
-- left. `sealed` holds the records (personal data) encrypted under a key of its own, bound to the
-- row. The rows go with the task's result (activities/fanout.py store_task_result), all of a
-- request's when it closes (withdrawn or cancelled mid-run: no task result comes; the trigger
-- below), and a run's left idle for a week (a workflow terminated by hand) when the next starts.
CREATE TABLE http_run_journal (
    request_id  uuid NOT NULL,
    system      text NOT NULL,
    run         text NOT NULL,      -- the action: erase, rectify, object.direct_marketing, ...
    attempt     integer NOT NULL,   -- the task's attempt (staff running it again start afresh)
    step        text NOT NULL,
    item        text NOT NULL,      -- a keyed hash of the item and its place in the step's items
    -- read: the item's records are in `sealed`; sending: a change's request went out, its answer
    -- is not known (the process may have died); answered: `status`, and whether it counted.
    state       text NOT NULL CHECK (state IN ('read', 'sending', 'answered')),
    status      integer,
    counted     boolean,
    read_bytes  bigint NOT NULL DEFAULT 0,
    sealed      bytea,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, system, run, attempt, step, item)
);
CREATE INDEX http_run_journal_age ON http_run_journal (stored_at);

-- A request that closes has no run left to carry on: whatever closed it (set_status in
-- dsrflow/stores/requests_store.py, or any later path), its journal goes with it.
CREATE FUNCTION http_run_journal_request_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM http_run_journal WHERE request_id = NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER http_run_journal_request_closed
    AFTER UPDATE OF closed_at ON dsr_requests
    FOR EACH ROW WHEN (NEW.closed_at IS NOT NULL AND OLD.closed_at IS NULL)
    EXECUTE FUNCTION http_run_journal_request_closed();
