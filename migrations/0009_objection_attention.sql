-- "Needs attention" also covers an objection waiting for compliance's decision: its workflow has
-- sent staff the `objection-decision` alert and no `objection.decided` event followed yet. The
-- queue reads those few alerts through this index, not the whole letters table.
CREATE INDEX sent_letters_objection_alerts
    ON sent_letters (request_id) WHERE purpose = 'staff_alert' AND letter_key LIKE '%:objection-decision';
CREATE INDEX audit_events_objection_decided
    ON audit_events (request_id) WHERE event_type = 'objection.decided';
