-- Working on the queue as a team (issue 19): who a request is assigned to, staff's internal notes
-- on a request, each member of staff's saved queue views, and the short reference people type.
--
-- A member of staff is a staff token (its label names them): assignments, notes and views point
-- at the token. Nothing here reaches the subject.
CREATE TABLE request_assignments (
    request_id  uuid PRIMARY KEY REFERENCES dsr_requests (id),
    assignee    uuid NOT NULL REFERENCES staff_tokens (id),
    assigned_by text NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX request_assignments_assignee ON request_assignments (assignee);

-- Internal notes: append-only; the audit event of each carries the sha256 of its text, so the
-- hash chain vouches for what a note said.
CREATE TABLE request_notes (
    id          uuid PRIMARY KEY,
    request_id  uuid NOT NULL REFERENCES dsr_requests (id),
    author      text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX request_notes_request ON request_notes (request_id, created_at);

-- A named set of queue filters (the query string of the queue), per member of staff.
CREATE TABLE saved_views (
    id          uuid PRIMARY KEY,
    token_id    uuid NOT NULL REFERENCES staff_tokens (id),
    name        text NOT NULL,
    query       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (token_id, name)
);

-- The short reference shown to people: the first 50 bits of the request's random id in ten
-- characters of an alphabet without 0, O, 1 or I (dsrflow/domain/references.py computes the
-- same). Unique, so a reference names one request; the full id keeps working everywhere.
CREATE FUNCTION dsr_reference(id uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(substr('23456789ABCDEFGHJKLMNPQRSTUVWXYZ', ((v >> (5 * (9 - i))) & 31)::int + 1, 1), ''
                      ORDER BY i)
    FROM (SELECT ('x' || lpad(substr(replace(id::text, '-', ''), 1, 13), 16, '0'))::bit(64)::bigint >> 2 AS v) AS bits,
         generate_series(0, 9) AS i
$$;
CREATE UNIQUE INDEX dsr_requests_reference ON dsr_requests (dsr_reference(id));
