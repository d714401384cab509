-- Exactly once in effect, nothing lost (issue 12).
--
-- mail_outbox: every e-mail (letters to subjects and staff, processor requests and reminders) is
-- claimed in a committed row before the SMTP transaction and marked sent after it, so a crash or a
-- database outage outside the SMTP transaction itself never sends twice. A claim still `claimed`
-- when a retry finds it means its sender died inside that transaction: activities/outbox.py says
-- what the retry does then, and the audit trail records it.
CREATE TABLE mail_outbox (
    mail_key    text PRIMARY KEY,
    request_id  uuid REFERENCES dsr_requests (id),
    message_id  text NOT NULL,
    state       text NOT NULL CHECK (state IN ('claimed', 'failed', 'sent')),
    attempts    integer NOT NULL DEFAULT 1,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

-- task_outcomes: what one action did in one system, per staff attempt, stored as soon as the
-- effect is known (before a transactional system commits, `committed` false; after it, true), so a
-- retry after a crash returns the effect that happened instead of recomputing "nothing found".
CREATE TABLE task_outcomes (
    request_id  uuid NOT NULL REFERENCES dsr_requests (id),
    system      text NOT NULL,
    action      text NOT NULL,
    attempt     integer NOT NULL,
    outcome     jsonb NOT NULL,
    committed   boolean NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, system, action, attempt)
);

-- step_troubles: a step of a request's workflow that failed for a reason retrying cannot cure, or
-- kept failing past the policy's attention_after_minutes. Open (resolved_at NULL) means the
-- request needs attention; staff retry or skip the step.
CREATE TABLE step_troubles (
    request_id   uuid NOT NULL REFERENCES dsr_requests (id),
    trouble_key  text NOT NULL,
    step         text NOT NULL,
    message      text NOT NULL,
    transient    boolean NOT NULL,
    since        timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolution   text,
    PRIMARY KEY (request_id, trouble_key)
);
CREATE INDEX step_troubles_open ON step_troubles (request_id) WHERE resolved_at IS NULL;
