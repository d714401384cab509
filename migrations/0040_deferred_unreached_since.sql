-- A deferred erasure whose system could not be reached (connection refused, 503, a timeout) was
-- left for the next day's sweep, and the next, for ever: only DsrSweepProblems said so, nobody was
-- e-mailed, and the request's panel read "scheduled". The sweep now records the first run that
-- could not reach it (its clock, `as_of`), and once the system's `completion_timeout_days` have
-- passed since then it fails the rows with the alert a failing system gets (activities/deferred.py).
-- Asking again (dsrflow/stores/deferred_store.py retry_deferred) starts the count anew.
ALTER TABLE deferred_erasures ADD COLUMN unreached_since timestamptz;
