-- When each scheduled sweep last succeeded (dsrflow/stores/sweep_runs.py). The schedules skip a
-- run while the one before is still running (Temporal's default overlap policy), so one run that
-- hangs, or a sweep that fails every time, stopped every later one unnoticed: packages kept past
-- their link, kept records never erased, chains not anchored. The gauge
-- dsrflow_sweep_last_success_age_seconds and alert DsrSweepStale read this table. Each sweep
-- starts as if it had just succeeded, so a new install's daily sweeps do not page before their
-- first run is due, and one that never succeeds shows its age from here. `problems`: what its last
-- successful run left undone for a person (a retention rule that could not run, a system the
-- erasure sweep could not erase in): gauge dsrflow_sweep_problems, alert DsrSweepProblems.
CREATE TABLE sweep_runs (
    sweep            text PRIMARY KEY,
    last_success_at  timestamptz NOT NULL,
    problems         integer NOT NULL DEFAULT 0,
    summary          jsonb
);
INSERT INTO sweep_runs (sweep, last_success_at)
VALUES ('erasure_sweep', now()), ('retention_sweep', now()), ('package_purge', now()),
       ('audit_anchor', now()), ('request_start_sweep', now());
