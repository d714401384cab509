-- The worker's start sweep (activities/acted_after_call_off.py `settle_acted_after`) reads, every few
-- minutes, the jobs a processor carried out after their call-off had cancelled them this past day: a
-- handful of events among every one ever recorded, found by this index rather than by reading the trail.
CREATE INDEX audit_events_acted_after_call_off ON audit_events (occurred_at)
    WHERE event_type = 'processor.acted_after_call_off';
