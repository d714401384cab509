-- What a request's close cannot know of a task's run: its changes on the wire.
--
-- The close keeps on the task the changes its run's journal counted (0049), rows 'answered' and
-- counted. A change whose request had gone out ('sending') with no answer on record is either on
-- the wire, its answer kept by the running try after the close (activities/connectors/
-- http_journal.py `_counted_after_close`), or lost with a worker that died: the service may have
-- made it, and nothing will ever say. Before, the count read as exact: the withdrawal letter
-- could go out saying one change fewer than the record said a moment later, and a change lost with
-- its worker was never told at all.
--
-- A `sending` row with a status is a change the service refused outright (a 4xx): not made.
--
-- `partial_unsure`: those changes, of which each may or may not have been made. NULL: none. The
-- running try takes back one for each answer it hears after the close; what is left is said as
-- "at least" the count (activities/letter_stopped.py, the trail's `task.partial_effect`).
ALTER TABLE system_tasks ADD COLUMN partial_unsure integer;

CREATE OR REPLACE FUNCTION http_run_journal_request_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO system_tasks AS t (request_id, system, action, status, attempt, message, partial_changed,
                                   partial_unsure)
    SELECT NEW.id, j.system, split_part(j.run, '.', 1), 'needs_attention', max(j.attempt),
           'stopped: the request was closed while its run was under way',
           nullif(count(DISTINCT (j.run, j.step, j.item)) FILTER (WHERE j.state = 'answered'), 0),
           -- A later attempt's answer to an item an earlier one sent is its answer.
           nullif(count(DISTINCT (j.run, j.step, j.item)) FILTER (
               WHERE j.state = 'sending' AND j.status IS NULL AND NOT EXISTS (
                   SELECT 1 FROM http_run_journal a
                    WHERE (a.request_id, a.system, a.run, a.step, a.item) = (j.request_id, j.system, j.run, j.step, j.item)
                      AND a.state = 'answered')), 0)
      FROM http_run_journal j
     WHERE j.request_id = NEW.id AND (j.state = 'answered' AND j.counted OR j.state = 'sending')
     GROUP BY j.system, split_part(j.run, '.', 1)
    ON CONFLICT (request_id, system, action) DO UPDATE
       SET partial_changed = CASE WHEN EXCLUDED.partial_changed IS NULL THEN t.partial_changed
                                  ELSE greatest(t.partial_changed, EXCLUDED.partial_changed) END,
           partial_unsure = EXCLUDED.partial_unsure, updated_at = now();
    DELETE FROM http_run_journal WHERE request_id = NEW.id;
    RETURN NULL;
END;
$$;
