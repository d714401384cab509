-- Copies that must not outlive their purpose (issue 14): a package file is deleted when its
-- download link expires, and a package or a processor's uploaded export when an erasure of the
-- same subject completes. The rows stay, as evidence of what existed and when it went.
ALTER TABLE packages ADD COLUMN purged_at timestamptz, ADD COLUMN purge_reason text;
ALTER TABLE processor_exports ADD COLUMN purged_at timestamptz;
CREATE INDEX packages_to_purge ON packages (expires_at) WHERE purged_at IS NULL;
