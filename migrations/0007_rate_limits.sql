-- Rate limits on what anyone may call without signing in (the subject portal and the public API:
-- submitting a request, verifying it). The counters live in Postgres so that every API process
-- counts the same hits. A bucket is a keyed hash of (action, client IP or e-mail address): neither
-- the address nor the IP is stored in clear. One row per bucket, a fixed window each.
CREATE TABLE rate_limit_counters (
    bucket      text PRIMARY KEY,
    hits        integer NOT NULL,
    window_end  timestamptz NOT NULL
);
CREATE INDEX rate_limit_counters_window_end ON rate_limit_counters (window_end);
