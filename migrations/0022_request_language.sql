-- The language the subject is written to in (issue 16): letters, the portal and the package's
-- summary. Requests opened before it existed were written to in English, and so is a row a tool
-- inserts without one; intake always names it (the request's or the policy's default).
ALTER TABLE dsr_requests ADD COLUMN language text NOT NULL DEFAULT 'en';
