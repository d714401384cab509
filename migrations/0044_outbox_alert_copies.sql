-- A staff alert's stored copy (recipient, subject, bodies, purpose), kept with its outbox claim
-- until it is marked sent. A sweep that dies once the relay has the alert leaves the row
-- `data_sent`; when nobody asks for that alert again (its condition has passed), the start sweep's
-- pass (activities/letters.py `record_handed_alerts`) records it from this copy, as a retry would
-- have. Staff alerts only: they carry no personal data of a subject.
ALTER TABLE mail_outbox ADD COLUMN copy jsonb;
