"""Contracts of the sweep that starts stored requests left without a workflow: counts only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StartSweepInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = "scheduled start sweep"


class StartSweepReport(BaseModel):
    """Requests found stored without a started workflow, and how many of them were started (the
    others had a workflow after all: one waiting for a worker, or one that has ended); and what
    else the run caught up."""
    model_config = ConfigDict(extra="forbid")

    found: int = 0
    started: int = 0
    # Whose stored policy version does not load (gone, or not readable by this code): left for
    # staff, named in the worker's log, still counted by the unstarted gauge and its alert.
    unstartable: int = 0
    # Tasks waiting for a processor's answer on record that no one had told them of (an API that
    # died between recording it and telling the task), told now (dsrflow/domain/processor_answers.py).
    answers_told: int = 0
    # Open requests whose workflow has ended without closing them (failed, terminated, timed out):
    # flagged for staff, once each (activities/request_start_sweep.py `flag_ended_workflows`).
    ended_flagged: int = 0
    # Stopped requests that staff were reminded of this time: one alert per whole day stopped.
    stopped_reminded: int = 0
    # Staff alerts of requests whose workflow runs but fails at every try, sent this time (the
    # first of a stretch of failures and one each whole day it lasts: `flag_failing_workflows`).
    failing_alerted: int = 0
    # Lifts held by a restriction that ended without coming into force at the system, carried out
    # now (or shown to staff where a person carries them out: activities/held_lifts.py).
    held_lifts_released: int = 0
    # Newer restrictions that told staff not to lift a system they were asked to lift by hand, their
    # own task having failed to (activities/lift_superseded.py `tell_untold`).
    lifts_superseded_told: int = 0
    # Tasks whose processor carried out their job after its call-off had cancelled it, put on their
    # record now, staff alerted (activities/acted_after_sweep.py `settle_acted_after`).
    acted_after_call_off: int = 0
