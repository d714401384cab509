-- The language the subject is written to in (issue 16): letters, the portal and the package's
-- summary. Requests opened before it existed were written to in English.
ALTER TABLE dsr_requests ADD COLUMN language text NOT NULL DEFAULT 'en';
ALTER TABLE dsr_requests ALTER COLUMN language DROP DEFAULT;
