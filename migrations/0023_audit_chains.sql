-- One hash chain per request (and per event family and UTC day for events without a request)
-- instead of one global chain, so appends to different chains never wait for each other; plus a
-- chain of anchors over the chains' heads (dsrflow/domain/audit*.py, docs/audit.md).
--
-- The rows written before this migration stay one chain, 'legacy', hashed as they always were
-- (their content does not name a chain); they get positions in their old order and the chain gets
-- a head, which the first anchor commits to.

ALTER TABLE audit_events ADD COLUMN chain_id text NOT NULL DEFAULT 'legacy';
ALTER TABLE audit_events ALTER COLUMN chain_id DROP DEFAULT;
ALTER TABLE audit_events ADD COLUMN chain_pos bigint;
-- Filling the new position column changes nothing that is hashed; the append-only trigger is off
-- for this one statement, inside the migration's transaction.
ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete;
UPDATE audit_events e SET chain_pos = n.pos
  FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS pos FROM audit_events) n
 WHERE n.seq = e.seq;
ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete;
ALTER TABLE audit_events ALTER COLUMN chain_pos SET NOT NULL;
CREATE UNIQUE INDEX audit_events_chain ON audit_events (chain_id, chain_pos);

-- Each chain's last position and hash. The row is also the chain's lock (SELECT ... FOR UPDATE):
-- appends to one chain queue on it, appends to others do not. Bookkeeping, not evidence: the
-- verifier trusts only audit_events and the anchors. anchored_pos is the position the last
-- anchor committed to; a chain with last_pos > anchored_pos has changed since.
CREATE TABLE audit_chain_heads (
    chain_id     text PRIMARY KEY,
    last_pos     bigint NOT NULL,
    last_hash    text NOT NULL,
    anchored_pos bigint NOT NULL DEFAULT 0
);
CREATE INDEX audit_chain_heads_unanchored ON audit_chain_heads (chain_id) WHERE last_pos > anchored_pos;
INSERT INTO audit_chain_heads (chain_id, last_pos, last_hash)
SELECT chain_id, chain_pos, hash FROM audit_events WHERE chain_id = 'legacy' ORDER BY chain_pos DESC LIMIT 1;

-- The anchor chain: each anchor hashes the previous anchor's hash and the heads (chain, position,
-- hash) of the chains that changed since it.
CREATE TABLE audit_anchors (
    position    bigint PRIMARY KEY,
    anchored_at timestamptz NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL UNIQUE
);
CREATE TABLE audit_anchor_heads (
    anchor_position bigint NOT NULL REFERENCES audit_anchors (position),
    chain_id        text NOT NULL,
    chain_pos       bigint NOT NULL,
    hash            text NOT NULL,
    PRIMARY KEY (anchor_position, chain_id)
);
CREATE INDEX audit_anchor_heads_chain ON audit_anchor_heads (chain_id, anchor_position);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER audit_anchors_no_update_delete BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_anchor_heads_no_update_delete BEFORE UPDATE OR DELETE ON audit_anchor_heads
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_anchor_heads_no_truncate BEFORE TRUNCATE ON audit_anchor_heads
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
