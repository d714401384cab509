-- The sweep that starts stored requests left without a workflow (activities/request_start_sweep.py)
-- reads the open requests whose workflow never set their due date. Normally none: a request leaves
-- this index a second after intake, when its workflow's first step sets the date.
CREATE INDEX dsr_requests_unstarted ON dsr_requests (created_at) WHERE due_date IS NULL AND closed_at IS NULL;
