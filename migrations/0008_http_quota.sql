-- The http connector's durable state: rate-limit slots and daily quota use shared by every
-- worker (GA4's User Deletion API allows 1.5 requests/s and 500 a day per property, and a day's
-- quota outlives any one activity), and the identifiers an asynchronous deletion service is
-- asked to delete, snapshotted when the request is planned, before other systems erase them.

CREATE TABLE http_rate_slots (
    bucket   text PRIMARY KEY,          -- the system's limits.key (e.g. the GA4 property)
    next_at  timestamptz NOT NULL       -- the earliest time the next request may go out
);

CREATE TABLE http_quota_days (
    bucket   text NOT NULL,
    day      date NOT NULL,             -- the service's quota day, in its timezone
    used     integer NOT NULL CHECK (used >= 0),
    PRIMARY KEY (bucket, day)
);

-- One row per identifier per request and system. The value is personal data: it is cleared as
-- soon as the service has accepted the deletion; the keyed hash keeps the row idempotent.
CREATE TABLE http_identifiers (
    request_id    uuid NOT NULL REFERENCES dsr_requests (id),
    system        text NOT NULL,
    id_type       text NOT NULL,
    value_hash    text NOT NULL,
    value         text,
    accepted_at   timestamptz,
    collected     jsonb NOT NULL DEFAULT '{}'::jsonb,  -- what the service answered (no personal data)
    PRIMARY KEY (request_id, system, id_type, value_hash)
);
CREATE INDEX http_identifiers_open ON http_identifiers (request_id, system) WHERE accepted_at IS NULL;
