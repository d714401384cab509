-- A processor that did not carry out an erasure asked of it once a legal-claims hold ended (its
-- deferred-erasure rows failed, migration 0032) was a dead end: staff were told to settle it with
-- the processor, and nothing could record that they had. Now compliance can ask the processor
-- again (a new job: `attempt`, the wait for its answer counted from `retried_at`) or record the
-- erasure as carried out by other means, with an internal note saying how (`settled_by`,
-- `settled_note`).
ALTER TABLE deferred_erasures ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE deferred_erasures ADD COLUMN retried_at timestamptz;
ALTER TABLE deferred_erasures ADD COLUMN settled_by text;
ALTER TABLE deferred_erasures ADD COLUMN settled_note uuid REFERENCES request_notes (id);
