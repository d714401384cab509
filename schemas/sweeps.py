"""The worker's scheduled sweeps, by the name each records its last success under, how often each
runs, and when it counts as stopped: workers/schedules.py makes their Temporal Schedules from
this, and the gauges of dsrflow/infra/metrics.py (and alert DsrSweepStale) judge each sweep by it."""

from __future__ import annotations

from datetime import timedelta

SWEEP_EVERY: dict[str, timedelta] = {
    "erasure_sweep": timedelta(days=1),  # erase what a hold kept, once the hold ended
    "retention_sweep": timedelta(days=1),  # the policy's retention periods
    "package_purge": timedelta(hours=1),  # a package outlives its link by an hour at most
    "audit_anchor": timedelta(minutes=10),  # how long a chain can be rewritten unnoticed (docs/audit.md)
    # How often stored requests left without a workflow are looked for (the API's 503 says so).
    "request_start_sweep": timedelta(minutes=5),
}


def stale_after(sweep: str) -> timedelta:
    """How long after its last success a sweep counts as stopped: two runs missed, and a quarter of
    a run's interval more (15 minutes at least), for a run that takes longer than the last one did
    (a day's backlog after a missed run): 54 hours for a daily sweep, 25 minutes for the start sweep."""
    every = SWEEP_EVERY[sweep]
    return 2 * every + max(every / 4, timedelta(minutes=15))
