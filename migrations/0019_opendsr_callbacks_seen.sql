-- Signed OpenDSR callbacks already acted on, so that a captured callback replayed later is
-- refused (api/callback_replay.py). A callback is identified by the digest of its signed body:
-- a processor's legitimate retry of a callback we refused is the same body and still gets in,
-- because rows are written only in the transaction that records the callback. Rows whose signed
-- time has aged past the freshness window are swept: a replay of one is refused as stale anyway.

CREATE TABLE opendsr_callbacks_seen (
    system      text NOT NULL,
    body_sha256 bytea NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,  -- NULL: the body carried no signed time, so it is kept
    PRIMARY KEY (system, body_sha256)
);

CREATE INDEX opendsr_callbacks_seen_expiry ON opendsr_callbacks_seen (expires_at) WHERE expires_at IS NOT NULL;
