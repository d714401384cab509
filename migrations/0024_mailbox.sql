-- The controller's privacy mailbox (docs/mailbox.md): each e-mail stored once, sealed at rest.
-- Only what the inbox sorts and filters by is in clear: no sender, subject or text.
CREATE TABLE mailbox_messages (
    id               uuid PRIMARY KEY,
    -- Keyed hash of the content that survives transport (sender, date, subject, Message-ID, body):
    -- the same message read twice, or once over IMAP and once through the sink, is one row.
    content_hash     text NOT NULL UNIQUE,
    -- Keyed hash of the Message-ID: a different message reusing it is kept, and flagged.
    message_id_hash  text,
    source           text NOT NULL CHECK (source IN ('imap', 'sink')),
    arrived_at       timestamptz NOT NULL,
    -- When the statutory clock starts: the message's own Date, unless that is implausible.
    received_at      timestamptz NOT NULL,
    size_bytes       integer NOT NULL,
    sealed           bytea NOT NULL,
    suggested_type   text,
    suggested_language text,
    status           text NOT NULL DEFAULT 'new'
                     CHECK (status IN ('new', 'converted', 'attached', 'dismissed')),
    request_id       uuid REFERENCES dsr_requests (id),
    decided_by       text,
    decided_at       timestamptz,
    dismiss_reason   text,
    alerted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('converted', 'attached')) = (request_id IS NOT NULL))
);
CREATE INDEX mailbox_messages_new ON mailbox_messages (arrived_at) WHERE status = 'new';
CREATE INDEX mailbox_messages_request ON mailbox_messages (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX mailbox_messages_message_id ON mailbox_messages (message_id_hash);

-- How far the reader got in an IMAP folder; a new UIDVALIDITY starts it again from the top
-- (stored messages are recognised by their content hash, so nothing is filed twice).
CREATE TABLE mailbox_cursors (
    mailbox      text PRIMARY KEY,
    uidvalidity  bigint NOT NULL,
    last_uid     bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
