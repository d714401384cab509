-- The Inbox's daily reminder (activities/mailbox_alerts.py remind_waiting) listed the messages it
-- named afresh on each attempt and recorded them (`mail.reminded`) only once the relay had it. A
-- worker killed after the relay took the reminder, and not back before the next day, left that
-- day's reminder sent and never recorded (the next day's has another key), and a retry the same
-- day recorded the messages waiting at the retry, not those the reminder named. Each day's list is
-- now written once, before its reminder goes: whichever check records the reminder, that day or a
-- later one, records that list.
CREATE TABLE mailbox_reminders (
    day        date PRIMARY KEY,  -- the controller's day the reminder is for: its key, mailbox-reminder:<day>
    messages   uuid[] NOT NULL,   -- the messages it names, oldest first
    listed_at  timestamptz NOT NULL DEFAULT now()
);
