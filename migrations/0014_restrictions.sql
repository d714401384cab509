-- Restrictions of processing (Art. 18 GDPR) as records with a lifecycle: in force from the
-- moment the restriction request's fan-out finished, until an explicit lift (a compliance
-- officer's, with a reason) has been announced to the subject (Art. 18(3)) and carried to every
-- system. The subject is referenced by the keyed hash used for holds and deferred erasures.

CREATE TABLE restrictions (
    request_id         uuid PRIMARY KEY REFERENCES dsr_requests (id),
    subject_hash       text NOT NULL,
    grounds            text[] NOT NULL,
    systems            text[] NOT NULL,      -- the systems the restriction reached
    keeps_from_erasure boolean NOT NULL,     -- a ground under which no sweep may erase (policy)
    since              timestamptz NOT NULL DEFAULT now(),
    lift_reason        text,
    lift_requested_by  text,
    lift_requested_at  timestamptz,
    lift_effective_on  timestamptz,          -- after the policy's notice period, if any
    lifted_at          timestamptz
);
CREATE INDEX restrictions_active ON restrictions (subject_hash) WHERE lifted_at IS NULL;
