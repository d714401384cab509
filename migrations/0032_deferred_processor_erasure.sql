-- A legal-claims hold over a processor we cannot ask record by record (OpenDSR, e-mail) kept all
-- it holds, in one row. When the hold ends the processor is asked to erase, and the row was
-- marked done at once, though the processor had only been asked: an erasure it later cancelled
-- or never did was on record as done. Now the row keeps the job's id and when it was asked, is
-- done only once the processor confirms, and keeps why it failed when it refuses or cancels.
ALTER TABLE deferred_erasures ADD COLUMN external_id text;
ALTER TABLE deferred_erasures ADD COLUMN submitted_at timestamptz;
ALTER TABLE deferred_erasures ADD COLUMN failed_at timestamptz;
ALTER TABLE deferred_erasures ADD COLUMN failure text;
-- A callback or a confirmation page finds the erasure it answers by the job's id.
CREATE INDEX deferred_erasures_external ON deferred_erasures (external_id) WHERE external_id IS NOT NULL;
