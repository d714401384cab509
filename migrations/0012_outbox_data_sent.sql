-- The outbox records the moment a message is handed to the relay (`data_sent`), so that a sender
-- that dies after it is not followed by a second copy (activities/outbox.py).
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_state_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_state_check
    CHECK (state IN ('claimed', 'data_sent', 'failed', 'sent'));
