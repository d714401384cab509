-- Console sessions also end after a spell without use (SESSION_IDLE in dsrflow/staff_tokens.py):
-- a console left open on an unattended desk stops working, not only after its 12 hours.
ALTER TABLE staff_sessions ADD COLUMN last_used_at timestamptz NOT NULL DEFAULT now();
