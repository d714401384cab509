-- Processors without an API (connector kind `manual_email`) are asked by e-mail and confirm through
-- a signed link. One row per request, system and action: it makes the e-mail go out once however
-- often the activity is retried, paces the reminders, and records the processor's confirmation.
-- Only the sha256 of the link's token is kept (`external_id`, as in system_tasks).

CREATE TABLE manual_tasks (
    request_id        uuid NOT NULL REFERENCES dsr_requests (id),
    system            text NOT NULL,
    action            text NOT NULL,
    external_id       text NOT NULL UNIQUE,
    contact_email     text NOT NULL,
    message_id        text NOT NULL,
    sent_at           timestamptz NOT NULL DEFAULT now(),
    reminders         integer NOT NULL DEFAULT 0,
    last_reminded_at  timestamptz,
    confirmed_at      timestamptz,
    confirmation_note text,
    PRIMARY KEY (request_id, system, action)
);
