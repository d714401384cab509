-- Finding a subject's requests by who they are (issue 19): staff search the queue by the
-- subject's e-mail address or customer number. Each is kept as a keyed hash
-- (dsrflow/crypto/hashing.py `lookup_hash`), so searching makes no new clear-text copy of an
-- address. The key lives outside the database (DSRFLOW_SECRET_KEY or $DSRFLOW_HOME/secret), so
-- this migration cannot compute the hashes of existing rows: `dsrflow migrate` (and `dsrflow up`)
-- fills them right after it (dsrflow/stores/request_lookup.py), and intake writes them with
-- every new request.
ALTER TABLE dsr_requests ADD COLUMN subject_email_key text;
ALTER TABLE dsr_requests ADD COLUMN customer_id_key text;

-- A search lists its rows in queue order, a page at a time: the same keyset as
-- migrations/0006_queue_and_sessions.sql, behind the hash.
CREATE INDEX dsr_requests_email_key_queue
    ON dsr_requests (subject_email_key, (coalesce(current_due_date, DATE '9999-12-31')), id);
CREATE INDEX dsr_requests_customer_key_queue
    ON dsr_requests (customer_id_key, (coalesce(current_due_date, DATE '9999-12-31')), id)
    WHERE customer_id_key IS NOT NULL;

-- Which key the stored hashes were made with (an HMAC of a fixed label, which tells nothing
-- about the key): when it changes, the backfill computes every row again.
CREATE TABLE request_lookup_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key_check  text NOT NULL,
    filled_at  timestamptz NOT NULL DEFAULT now()
);
