-- Requests, verification evidence, letters, staff tokens and the hash-chained audit trail.
-- Personal data (the subject's identities) lives only in dsr_requests and sent letters; Temporal
-- sees request ids.

CREATE TABLE dsr_requests (
    id                uuid PRIMARY KEY,
    idempotency_key   text UNIQUE,
    intake_fingerprint text,
    request_type      text NOT NULL,
    regime            text NOT NULL,
    country           text NOT NULL,
    channel           text NOT NULL,
    origin            text NOT NULL DEFAULT 'subject',
    subject_email     text NOT NULL,
    subject_name      text,
    customer_id       text,
    details           jsonb NOT NULL DEFAULT '{}'::jsonb,
    received_at       timestamptz NOT NULL,
    status            text NOT NULL,
    attested_by       text,
    policy_version    text NOT NULL,
    due_date          date,
    extended_due_date date,
    acknowledge_by    date,
    current_due_date  date,
    extended          boolean NOT NULL DEFAULT false,
    verified_at       timestamptz,
    closed_at         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dsr_requests_status_due ON dsr_requests (status, current_due_date);
CREATE INDEX dsr_requests_email ON dsr_requests (lower(subject_email));

CREATE TABLE sent_letters (
    letter_key   text PRIMARY KEY,
    request_id   uuid NOT NULL REFERENCES dsr_requests (id),
    purpose      text NOT NULL,
    recipient    text NOT NULL,
    subject      text NOT NULL,
    message_id   text NOT NULL,
    body_text    text NOT NULL,
    body_html    text NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sent_letters_request ON sent_letters (request_id, sent_at);

CREATE TABLE staff_tokens (
    id          uuid PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('agent', 'compliance', 'admin')),
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE audit_events (
    seq          bigserial PRIMARY KEY,
    event_key    text NOT NULL UNIQUE,
    request_id   uuid,
    event_type   text NOT NULL,
    actor        text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL,
    prev_hash    text NOT NULL,
    hash         text NOT NULL UNIQUE
);
CREATE INDEX audit_events_request ON audit_events (request_id, seq);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END;
$$;
CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Every policy version a request started under, so it can be planned and explained later with
-- exactly that content whatever the policy file says today.
CREATE TABLE policy_versions (
    version     text PRIMARY KEY,
    content     jsonb NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now()
);
