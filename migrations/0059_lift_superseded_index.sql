-- The worker's start sweep (activities/lift_superseded.py `tell_untold`) reads, every few minutes,
-- the lifts handed to staff (a held lift's release that needs a person) and which of them a newer
-- restriction has already named (`restriction.lift_superseded`): a handful among every event.
CREATE INDEX audit_events_lift_by_hand ON audit_events (occurred_at)
    WHERE event_type = 'restriction.lift_released' AND data ->> 'status' = 'needs_attention';
CREATE INDEX audit_events_lift_superseded ON audit_events (occurred_at)
    WHERE event_type = 'restriction.lift_superseded';
