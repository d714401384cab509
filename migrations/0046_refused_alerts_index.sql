-- The metrics' gauge dsrflow_staff_alerts_refused (dsrflow/infra/metrics.py) counts, at each
-- scrape, the staff alerts the mail relay refused for good this past week (activities/sweep_alerts.py
-- records each as `letter.refused`): a handful of events among every one ever recorded, found by
-- this index rather than by reading the whole trail.
CREATE INDEX audit_events_letter_refused ON audit_events (occurred_at) WHERE event_type = 'letter.refused';
