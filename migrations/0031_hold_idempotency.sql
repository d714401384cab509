-- Placing a hold again with the same Idempotency-Key (a client that lost the answer when the API
-- died after the commit) returns the first hold instead of placing a second one: two holds on one
-- subject, one whose id compliance never received, kept the records after the known one was
-- released. The fingerprint tells a repeat of the same hold from a key reused for another.
ALTER TABLE legal_holds ADD COLUMN idempotency_key text UNIQUE;
ALTER TABLE legal_holds ADD COLUMN fingerprint text;
