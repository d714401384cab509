-- A long SaaS run's journal (0036) outlives a task that needs staff, so that a staff retry goes on
-- from it (activities/connectors/http_journal.py): before, the rows went with the needs_attention
-- result, the retry started afresh and reported only the records left ("3 deleted" of 1,000).
-- A run that ends writes one row of state `complete`; the task's result takes the run's rows only
-- then. `config`: a hash of the system's configuration as the environment completed it (base URL,
-- ids; no secret) when the row was written: a retry under another one does not go on from them.
ALTER TABLE http_run_journal ADD COLUMN config text;
ALTER TABLE http_run_journal DROP CONSTRAINT http_run_journal_state_check;
ALTER TABLE http_run_journal ADD CONSTRAINT http_run_journal_state_check
    CHECK (state IN ('read', 'sending', 'answered', 'complete'));
