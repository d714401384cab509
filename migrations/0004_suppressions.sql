-- Direct-marketing objections leave a suppression entry so that a later import of the same
-- address is blocked. Only a keyed hash of the normalised e-mail address is kept.
CREATE TABLE suppressions (
    identifier_hash text NOT NULL,
    scope           text NOT NULL,
    request_id      uuid REFERENCES dsr_requests (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identifier_hash, scope)
);
