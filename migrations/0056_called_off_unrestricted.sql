-- What a legal-claims hold kept from an erasure then withdrawn, cancelled or denied is called off
-- (0055): left as it is, under its system's ordinary retention. The hold had marked those records
-- restricted in their system (a sql system's restricted column), and nothing lifted that mark, so
-- they stayed restricted for ever though nothing kept them so. The sweep now lifts it once the hold
-- is released and nothing else keeps them (activities/called_off_marks.py), and records when here.
ALTER TABLE deferred_erasures ADD COLUMN unrestricted_at timestamptz;
