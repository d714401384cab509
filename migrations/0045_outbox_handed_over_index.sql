-- The start sweep reads, every five minutes, the staff alerts a dead sender handed to the relay
-- and nobody asked for again (activities/outbox.py `handed_over`, recorded by
-- activities/sweep_alerts.py `record_handed_alerts`): a handful of rows among every letter ever
-- sent, found by this index rather than by reading the whole outbox at each run.
CREATE INDEX mail_outbox_handed_over ON mail_outbox (claimed_at) WHERE state = 'data_sent' AND copy IS NOT NULL;
