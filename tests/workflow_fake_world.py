"""The in-memory world of the fake activities of tests/workflow_fakes.py: the requests they know
(`RequestSpec` and the `FakeSystem`s of its plan, under the shipped policy), what they were asked
and recorded, the failures a test injects (`fail`, `heal`), and what tests read back (the letters
the subject was sent, the staff alerts, the status changes, the systems asked, the verification
codes). `FakeActivities` (tests/workflow_fakes.py) is this world with the fakes themselves, and
re-exports `SHIPPED`, `FakeSystem` and `RequestSpec`: tests import them from there.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity

from policy.model import load_policy
from schemas.audit import AnchorInput
from schemas.copies import PurgeInput
from schemas.holds import SweepInput
from schemas.requests import RequestType
from schemas.restrictions import LiftAnnounced, LiftCarriedOut, RestrictionInForce
from schemas.retention import RetentionSweepInput
from schemas.steps import TroubleRecord
from schemas.verification import IssueChallenge, VerifyAttempt
from schemas.workflow import EventRecord, ExtensionRecord, LetterJob, Plan, TaskInput, TaskRecord, Transition

# The shipped policy: its calendar, warning days and verification numbers make the facts the
# fake `prepare_request` answers the ones a real request under the default policy gets.
SHIPPED = load_policy()


@dataclass
class FakeSystem:
    """One system of the plan and how it behaves when asked."""

    name: str
    connector: str = "sql"
    found: int = 3  # records of the subject it holds
    recipient: str | None = None  # the Art. 19 recipient it is, if any
    completion_timeout_days: int = 14
    # An asynchronous processor: answers "pending", then "done" on this many-th poll.
    answers_on_poll: int | None = None
    # Fails for good (the connector's PermanentConnectorError) with this message, until healed.
    broken: str | None = None


@dataclass
class RequestSpec:
    """What the real `prepare_request` and `plan_request` would read from the request's row and
    its policy version."""

    request_type: RequestType = RequestType.erasure
    attested: bool = True
    approval_required: bool = False
    regime: str = "gdpr"
    # A complaint to us (UK GDPR, DPA 2018 s. 164A): its details name the request it complains of,
    # so its due date is the policy's target and, while undecided, it gets progress letters.
    complaint: bool = False
    received_at: datetime | None = None  # set to the virtual clock's now when the request opens
    systems: list[FakeSystem] = field(default_factory=lambda: [FakeSystem("crm"), FakeSystem("billing")])
    objection_scope: str | None = None
    lift_notice_days: int = 0  # the policy's restriction.lift_notice_days
    attention_after_minutes: int = SHIPPED.policy.attention_after_minutes
    timezone: str = SHIPPED.policy.defaults.timezone  # the policy's defaults.timezone: the controller's


def _hash(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()



class FakeWorld:
    """What the fakes know and record, what tests set up and what they read back."""

    def __init__(self) -> None:
        self.specs: dict[str, RequestSpec] = {}
        self.letters: list[LetterJob] = []  # every letter asked for, verification codes included
        self.sent_at: dict[str, datetime] = {}  # letter key -> when first asked for, on the virtual clock
        self.transitions: list[Transition] = []
        self.events: list[EventRecord] = []
        self.troubles: list[TroubleRecord] = []
        self.extensions: list[ExtensionRecord] = []
        self.challenges: list[IssueChallenge] = []
        self.withdrawn: list[IssueChallenge] = []  # rounds settled unsent: their e-mail never goes
        self.skips_settled: list[tuple[str, bool]] = []  # (purpose, whether it went) of skipped letters
        self.system_calls: list[TaskInput] = []  # run_system_action
        self.asked_at: dict[tuple[str, str, str, int], datetime] = {}  # (request, system, action, attempt)
        self.polls: list[TaskInput] = []  # poll_system_action
        self.task_records: list[TaskRecord] = []
        self.packages: list[Plan] = []
        self.restrictions: list[RestrictionInForce | LiftAnnounced | LiftCarriedOut] = []
        self.sweeps: list[SweepInput | RetentionSweepInput | PurgeInput] = []
        self.anchors: list[AnchorInput] = []
        self.attempts: Counter[str] = Counter()  # activity name -> attempts, failed ones included
        self._failures: dict[str, tuple[Callable[[Any], bool], Callable[[], BaseException]]] = {}
        self._polls_left: dict[tuple[str, str, str, int], int] = {}
        # The test server's clock (FastStack sets it). Steps run as local activities, whose
        # scheduled time is the machine's, so the virtual time is asked for.
        self.clock: Callable[[], Awaitable[datetime]] | None = None
        self._effects: set[tuple[str, ...]] = set()  # see _first

    async def _now(self) -> datetime:
        """The virtual clock, read while the step runs: the test server may skip far ahead once
        nothing is left to wait for."""
        if self.clock is None:
            return activity.info().current_attempt_scheduled_time
        return await self.clock()

    # ---- what tests set up ------------------------------------------------------------------

    def fail(self, activity_name: str, error: Callable[[], BaseException],
             when: Callable[[Any], bool] = lambda _: True) -> None:
        """Make one of the request's own steps (prepare_request, send_letter, plan_request, ...)
        raise `error()` for the inputs `when` accepts, until `heal`. A system's failure is
        `FakeSystem.broken` instead: it fails inside the system's task workflow."""
        self._failures[activity_name] = (when, error)

    def heal(self, activity_name: str) -> None:
        self._failures.pop(activity_name, None)

    def system(self, request_id: str, name: str) -> FakeSystem:
        return next(s for s in self.specs[request_id].systems if s.name == name)

    def _maybe_fail(self, name: str, arg: Any) -> None:
        self.attempts[name] += 1
        failure = self._failures.get(name)
        if failure is not None and failure[0](arg):
            raise failure[1]()

    # ---- what tests read --------------------------------------------------------------------

    def subject_letters(self, request_id: str) -> list[str]:
        """The purposes of the letters the subject was sent, in order."""
        return [j.purpose for j in self.letters if j.request_id == request_id and not j.to_staff]

    def staff_alerts(self, request_id: str) -> list[str]:
        """The keys of the staff alerts, in order (e.g. "approval", "attention:billing:1")."""
        return [j.key for j in self.letters if j.request_id == request_id and j.to_staff]

    def letter(self, request_id: str, purpose: str) -> LetterJob:
        [job] = [j for j in self.letters if j.request_id == request_id and j.purpose == purpose and not j.to_staff]
        return job

    def statuses(self, request_id: str) -> list[str]:
        """The stored status changes, as `status:<event>` keys."""
        return [t.event_key for t in self.transitions if t.request_id == request_id]

    def event_types(self, request_id: str) -> list[str]:
        return [e.event_type for e in self.events if e.request_id == request_id]

    def asked(self, request_id: str) -> list[tuple[str, str, int]]:
        """(system, action, attempt) of every system action started, sorted."""
        return sorted((t.task.system, t.task.action, t.attempt) for t in self.system_calls
                      if t.request_id == request_id)

    def code(self, request_id: str, round: int | None = None) -> str:
        """The code in the subject's verification e-mail of that round (default: the latest)."""
        rounds = [c.round for c in self.challenges if c.request_id == request_id]
        return f"{int(_hash('code', request_id, str(round or max(rounds)))[:8], 16) % 10**6:06d}"

    @staticmethod
    def typed(request_id: str, code: str) -> VerifyAttempt:
        """What the API asks the workflow when the subject types `code`: its keyed hash."""
        return VerifyAttempt(code_hash=_hash("code-hash", request_id, code))

    def _first(self, *key: str) -> bool:
        """Whether this is the first effect under `key`: the real steps write (and the outbox
        sends) once per key, and a step may run again (a local activity whose workflow task was
        lost) without a second effect."""
        if key in self._effects:
            return False
        self._effects.add(key)
        return True
