-- The worker's start sweep (activities/acted_after_sweep.py) reads, every few minutes, this past day's
-- jobs a processor cancelled after a call-off that could not confirm it: a `processor.called_off`
-- the API wrote from the processor's signed callback (`via`), a handful among every event recorded.
CREATE INDEX audit_events_called_off_via_callback ON audit_events (occurred_at)
    WHERE event_type = 'processor.called_off' AND data ? 'via';
