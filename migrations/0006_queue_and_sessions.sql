-- The staff queue: requests listed by (current due date, id) with keyset pagination, and staff
-- console sessions.
--
-- A request's due date is computed by its workflow shortly after intake; until then it sorts last.
-- Every queue query orders by exactly this expression so these indexes serve it.
CREATE INDEX dsr_requests_queue
    ON dsr_requests ((coalesce(current_due_date, DATE '9999-12-31')), id);
-- The default view (open requests) and the overdue filter read only open rows.
CREATE INDEX dsr_requests_open_queue
    ON dsr_requests ((coalesce(current_due_date, DATE '9999-12-31')), id)
    WHERE status IN ('awaiting_verification', 'in_progress', 'awaiting_approval');
CREATE INDEX dsr_requests_status_queue
    ON dsr_requests (status, (coalesce(current_due_date, DATE '9999-12-31')), id);
CREATE INDEX dsr_requests_type_queue
    ON dsr_requests (request_type, (coalesce(current_due_date, DATE '9999-12-31')), id);
-- "Needs attention": the requests with a system task waiting for staff.
CREATE INDEX system_tasks_attention_request
    ON system_tasks (request_id) WHERE status = 'needs_attention';

-- Console sessions: the cookie holds a random id; only its sha256 is stored. A session lives no
-- longer than its staff token: revoking the token ends every session signed in with it.
CREATE TABLE staff_sessions (
    id_hash     text PRIMARY KEY,
    token_id    uuid NOT NULL REFERENCES staff_tokens (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz
);
CREATE INDEX staff_sessions_token ON staff_sessions (token_id);
