"""Saved histories of real request runs, replayed by tests/test_replay.py.

Their payloads are AES-GCM encrypted like every payload dsrflow sends to Temporal, with the
TEST-ONLY key in `test-key` (committed on purpose: it protects nothing and must never be used
outside tests). Regenerate the histories with `.venv/bin/python -m tests.histories.record`.
"""

from __future__ import annotations

from pathlib import Path

from dsrflow.setting_values import parse_key_list

DIRECTORY = Path(__file__).resolve().parent
KEY_FILE = DIRECTORY / "test-key"


def key_line() -> str:
    """The `kid:base64` line of the test-only key file (comment lines skipped)."""
    lines = [line.strip() for line in KEY_FILE.read_text().splitlines()]
    return ",".join(line for line in lines if line and not line.startswith("#"))


KEYS: list[tuple[str, bytes]] = parse_key_list(key_line())


# Every path a running request can be on, each with a history recorded by today's code.
PATHS = {"attested_erasure", "verified_access_extended", "objection_decided", "task_retried_and_resolved",
         "approved_access", "system_task_erasure_email_marketing", "cancelled_by_staff",
         "access_with_processor_export", "restriction_lifted", "approved_attested_erasure"}
# Besides them, complaint_progress.json: a UK complaint's progress letters, whose weeks need the
# time-skipping server (tests/histories/record_complaint_progress.py records it), and
# complaint_progress_by_hand.json: one told of its progress by staff too, which moves the automatic
# letters (workflows/complaint_progress.py PROGRESS_BY_HAND; record_progress_by_hand.py records it).
# And lgpd_simplified_confirmation.json: an LGPD access request asking for the simplified
# confirmation (workflows/dsr.py SIMPLIFIED_CONFIRMATION), recorded by record.py since.
# And appeal_decided.json, appeal_closed_for_another.json: two appeals of one refusal, the first
# confirmed decided, the second closed for it (workflows/appeal_claim.py; recorded by record.py
# since, so the earlier directories below hold none).

# Histories recorded before a change to the workflows' commands (kept: requests started then are
# still running and must replay), each directory with the histories it must hold:
# children_per_system/ ran every system as a child workflow and every step as an activity task;
# sql_activity_tasks/ ran a sql system's task as an activity task instead of a local activity;
# callbacks_confirmed_by_poll/ asked an OpenDSR processor's status after every signed callback
# (only a system's task changed: workflows/system_task.py TRUST_SIGNED_CALLBACK);
# retry_answered_once_settled/ answered staff's retry of a processor's task only once the new
# attempt settled (workflows/task_fanout.py RETRY_ANSWERS_ONCE_STARTED);
# decisions_inside_updates/ recorded (and notified) a cancellation, an extension or an objection
# decision inside its update (workflows/owed_steps.py OWED_STEPS);
# verification_records_inside_updates/ recorded a verification attempt inside the `verify` update
# (workflows/verification.py VERIFICATION_OWED); decisions_answered_when_settled/ answered a
# decision, or a lift, only once its steps were done or in trouble (workflows/owed_steps.py
# ANSWER_BOUNDED, workflows/restriction_lifecycle.py LIFT_ANSWER_BOUNDED); approvals_recorded_inside_updates/
# recorded an approval inside its update (workflows/approval.py APPROVAL_OWED);
# task_answers_retried_for_threshold/ did the same with staff's retry and resolution of a task,
# leaving the answer taken when the record failed (workflows/task_fanout.py TASK_ANSWERS_BOUNDED);
# task_answers_taken_back/ recorded a task's retry or resolution inside its update, taking the
# answer back when the record failed, and stopped the owed steps before a restriction's lift
# (workflows/task_fanout.py TASK_ANSWERS_OWED); quota_retried_by_its_activity/ left a daily quota
# used up in an http system's first run to the activity's retries, a quota day apart, then the
# task needed staff (workflows/system_task.py QUOTA_WAITS; a task on the time-skipping server with
# fake activities, the request's workflow not kept); progress_in_24h_steps/ counted a complaint's
# progress letters in 24 h steps from its checkpoints' midnight, whose checkpoints named no zone
# (workflows/step_trouble.py LOCAL_HOUR); progress_patch_undeprecated/ recorded the progress letters'
# and the local hour's patch markers undeprecated, in an unstraddled run (workflows/complaint_progress.py
# COMPLAINT_PROGRESS: complaint_progress.json is a straddled run's, with them deprecated).
EARLIER = {"children_per_system": PATHS | {"system_task_erasure_billing"}, "sql_activity_tasks": PATHS,
           "callbacks_confirmed_by_poll": {"system_task_erasure_email_marketing"},
           "retry_answered_once_settled": {"task_retried_and_resolved"},
           "decisions_inside_updates": {"verified_access_extended", "cancelled_by_staff", "objection_decided"},
           "verification_records_inside_updates": {"verified_access_extended"},
           "decisions_answered_when_settled": {"verified_access_extended", "cancelled_by_staff", "objection_decided",
                                               "restriction_lifted"},
           "approvals_recorded_inside_updates": {"approved_access", "approved_attested_erasure"},
           "task_answers_retried_for_threshold": {"task_retried_and_resolved"},
           "task_answers_taken_back": {"task_retried_and_resolved", "restriction_lifted"},
           "quota_retried_by_its_activity": {"system_task_quota_day"},
           "progress_in_24h_steps": {"complaint_progress"},
           "progress_patch_undeprecated": {"complaint_progress"}}


def history_files() -> list[Path]:
    return sorted(DIRECTORY.rglob("*.json"))
