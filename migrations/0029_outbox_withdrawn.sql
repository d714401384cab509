-- A message can be withdrawn before it goes (`withdrawn`): a verification code whose resend gave
-- up while its e-mail was still under way is settled by taking the outbox's lock, so that the
-- attempt still running cannot send it afterwards (activities/outbox.py `withdraw`).
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_state_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_state_check
    CHECK (state IN ('claimed', 'data_sent', 'failed', 'sent', 'withdrawn'));
