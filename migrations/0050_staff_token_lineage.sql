-- Which token created each token (dsrflow/stores/staff_tokens.py): one created with a token lives
-- no longer than its creator, and revoking a token can take every token it created with it (a
-- stolen admin token's offspring). NULL: made at the server (`dsrflow token create`), or before
-- this was recorded; the audit trail's `staff.token_created` names only an actor's first eight
-- characters of its token's id, which is not enough to say which token it was, so nothing is
-- backfilled.
ALTER TABLE staff_tokens ADD COLUMN created_by uuid REFERENCES staff_tokens (id);
CREATE INDEX staff_tokens_created_by ON staff_tokens (created_by) WHERE created_by IS NOT NULL;
