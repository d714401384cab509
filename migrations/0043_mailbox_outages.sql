-- How long the IMAP reader had failed was known only to its worker's memory (activities/
-- mailbox_reader.py): a worker restarted again and again started its 15 minutes anew, so a mailbox
-- that stayed unreadable across restarts could go unalerted; a worker killed as the relay took the
-- "mailbox cannot be read" alert left it sent and `mail.unreadable` unwritten; and the alert was
-- once per UTC day, not per outage. Each outage is now a row: since when nobody has read the mailbox
-- through, whichever worker failed, until a session reads it through again.
CREATE TABLE mailbox_outages (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mailbox   text NOT NULL,         -- the reader's cursor key (mailbox_cursors.mailbox)
    since     timestamptz NOT NULL,  -- the first failed session since the mailbox was last read through
    failure   text NOT NULL,         -- the latest failure's kind and the server's refusal (never the login)
    ended_at  timestamptz            -- the session that read it through again
);
CREATE UNIQUE INDEX mailbox_outages_open ON mailbox_outages (mailbox) WHERE ended_at IS NULL;
CREATE INDEX mailbox_outages_ended ON mailbox_outages (mailbox, ended_at);

-- Each day's alert of an outage, written before it goes (its key: mailbox-unreadable:<outage>:<day>)
-- with the failure it names: whichever check records it, that day or a later one after a worker
-- died, records what it said (as mailbox_reminders does for the Inbox's reminder).
CREATE TABLE mailbox_outage_alerts (
    outage   bigint NOT NULL REFERENCES mailbox_outages,
    day      date NOT NULL,  -- the controller's day
    failure  text NOT NULL,
    PRIMARY KEY (outage, day)
);
