-- The staff alert for e-mails waiting too long (activities/mailbox_alerts.py) was keyed by the set
-- of messages it named, computed afresh on each check. A worker killed after the relay took an
-- alert, with one more message waiting by the next check, made a new set, a new key and a second
-- alert naming the same messages, and the first, delivered, was never recorded. Each message now
-- names the alert that is to carry it before that alert is sent, so the next check finishes that
-- alert (recording it, or sending it if it never went) before it makes another.
ALTER TABLE mailbox_messages ADD COLUMN alert_key text;
