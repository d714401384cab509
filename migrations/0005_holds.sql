-- Legal holds (Art. 17(3)): legal-claims holds placed by compliance, records kept under a hold
-- and scheduled for erasure when it ends, and the erasure ledger used to re-erase after a
-- backup restore. Subjects are referenced by a keyed hash of their e-mail address.

CREATE TABLE legal_holds (
    id            uuid PRIMARY KEY,
    subject_hash  text NOT NULL,
    subject_email text,
    customer_id   text,
    systems       text[],          -- NULL: every system
    categories    text[],          -- NULL: every category
    basis         text NOT NULL,
    reason        text NOT NULL,
    review_date   date NOT NULL,
    placed_by     text NOT NULL,
    placed_at     timestamptz NOT NULL DEFAULT now(),
    released_by   text,
    released_at   timestamptz
);
CREATE INDEX legal_holds_active ON legal_holds (subject_hash) WHERE released_at IS NULL;

CREATE TABLE deferred_erasures (
    id            bigserial PRIMARY KEY,
    request_id    uuid REFERENCES dsr_requests (id),
    subject_hash  text NOT NULL,
    system        text NOT NULL,
    dataset       text NOT NULL,
    record_key    text NOT NULL,
    hold_kind     text NOT NULL CHECK (hold_kind IN ('statutory', 'legal_claims')),
    hold_ref      text NOT NULL,   -- the statute's key, or the legal hold's id
    erase_after   date,            -- NULL: when the legal-claims hold is released
    policy_version text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,
    UNIQUE (request_id, system, dataset, record_key, hold_kind, hold_ref)
);
CREATE INDEX deferred_erasures_due ON deferred_erasures (erase_after) WHERE done_at IS NULL;

CREATE TABLE erasure_ledger (
    id            bigserial PRIMARY KEY,
    subject_hash  text NOT NULL,
    system        text NOT NULL,
    dataset       text NOT NULL,
    record_key    text NOT NULL,
    action        text NOT NULL,   -- deleted | anonymised
    policy_version text NOT NULL,
    request_id    uuid,
    origin        text NOT NULL,   -- request | deferred | retention | replay
    erased_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erasure_ledger_time ON erasure_ledger (erased_at);

-- What each system's erasure kept under a hold (no record keys): evidence for compliance.
ALTER TABLE system_tasks ADD COLUMN kept_records jsonb NOT NULL DEFAULT '[]'::jsonb;
