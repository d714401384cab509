-- The start sweep (activities/request_start_sweep.py) records when a request's frozen workflow
-- carries on again (`request.workflow_recovered`), for each stretch of failures it recorded
-- (`request.workflow_failing`) on a request still open: a few rows among the audit trail's
-- millions, found by this index rather than by reading the trail every ten minutes.
CREATE INDEX audit_events_workflow_failing ON audit_events (request_id) WHERE event_type = 'request.workflow_failing';
