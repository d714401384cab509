-- The start sweep looks, every five minutes, for lifts held by a restriction that then ended without
-- coming into force (activities/held_lifts.py): a handful of `restriction.lift_held` events among
-- every one ever recorded, found by this index rather than by reading the whole trail.
CREATE INDEX audit_events_lift_held ON audit_events (seq) WHERE event_type = 'restriction.lift_held';
