-- The console's Tokens page and the metrics' gauge dsrflow_staff_tokens_over_their_bound
-- (dsrflow/infra/metrics.py, at each scrape) read the recent refusals of a token past its bound of
-- requests opened (api/staff_opens.py records each as `staff.open_limit_reached`): a handful of
-- events among every one ever recorded, found by this index rather than by reading the whole trail.
CREATE INDEX audit_events_open_limit ON audit_events (occurred_at) WHERE event_type = 'staff.open_limit_reached';
