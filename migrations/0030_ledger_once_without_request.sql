-- Retention erasures have no request (request_id NULL), and a unique index treats NULLs as
-- distinct: a retention run killed after its ledger rows were kept (before the system's commit,
-- activities/retention.py) and run again ledgered each record twice. One row per record is what
-- the replay after a backup restore needs; the second run's rows add nothing.
DELETE FROM erasure_ledger a USING erasure_ledger b
 WHERE a.id > b.id AND a.request_id IS NULL AND b.request_id IS NULL AND a.system = b.system
   AND a.dataset = b.dataset AND a.record_key = b.record_key AND a.action = b.action AND a.origin = b.origin;
DROP INDEX erasure_ledger_once;
CREATE UNIQUE INDEX erasure_ledger_once ON erasure_ledger (request_id, system, dataset, record_key, action, origin)
    NULLS NOT DISTINCT;
