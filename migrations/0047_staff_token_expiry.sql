-- A staff token works until its expiry (dsrflow/stores/staff_tokens.py); new tokens always get one
-- (DSRFLOW_TOKEN_DAYS unless their creator chose another). Tokens issued before this migration
-- keep NULL, "never": giving them one from today would stop every script and integration using
-- them on one unannounced day. The console's Tokens page and `dsrflow token list` show them as
-- never expiring, with a warning, so that an admin replaces them deliberately.
ALTER TABLE staff_tokens ADD COLUMN expires_at timestamptz;
