-- A record is ledgered once per request, system, dataset, key, action and origin. A step whose
-- first attempt kept its evidence (before the system's own commit) and then died is run again:
-- the system erases the record once, and the ledger must say so once too.
DELETE FROM erasure_ledger a USING erasure_ledger b
 WHERE a.id > b.id AND a.request_id = b.request_id AND a.system = b.system AND a.dataset = b.dataset
   AND a.record_key = b.record_key AND a.action = b.action AND a.origin = b.origin;
CREATE UNIQUE INDEX erasure_ledger_once ON erasure_ledger (request_id, system, dataset, record_key, action, origin);
