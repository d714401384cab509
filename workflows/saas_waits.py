"""What an http system's task waits for while it tries again by itself (workflows/system_task.py
`_unreached`), since when, until when, and the words staff read of it: its SaaS down past the quick
retries (SAAS_OUTAGE_ERRORS: tried again after a minute, doubling to an hour, for UNREACHED_FOR), or
its daily quota used up (QUOTA_USED_UP: our count of it or the service's answer; tried again once the
quota renews, for the system's completion timeout: a long run goes on a quota day at a time, and the
completion timeout is how long the controller lets the system take). Pure: times and words, no
command of the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.workflow import PENDING_UNREACHED, TaskInput, TaskResult

# The activity's error when the day's quota is used up (activities/connectors/http.py): its
# next_retry_delay is the time to the quota's renewal.
QUOTA_USED_UP = "HttpQuotaExhausted"
# How long an unreachable SaaS is tried again before staff are asked: a day of outage is already
# rare, and it leaves most of a request's month for staff to act on (the deadline alerts run on
# meanwhile: workflows/deadline_watch.py). The tries back off from a minute to an hour.
UNREACHED_FOR = timedelta(hours=24)
_UNREACHED_FIRST = timedelta(minutes=1)
_UNREACHED_MAX = timedelta(hours=1)
# Tried a minute after the quota renews: the service's clock and ours differ by seconds.
_AFTER_RENEWAL = timedelta(minutes=1)


def quota_used_up(error: BaseException) -> bool:
    """A failure of an http system's action because its daily quota is used up."""
    return (isinstance(error, ActivityError) and isinstance(error.cause, ApplicationError)
            and error.cause.type == QUOTA_USED_UP)


def _asked(error: ActivityError) -> timedelta:
    """How long the service asked to be left alone: to its quota's renewal, or its Retry-After."""
    cause = error.cause
    return (cause.next_retry_delay if isinstance(cause, ApplicationError) else None) or timedelta(0)


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def lasting(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


@dataclass
class ServiceWait:
    """One task's wait on its SaaS. `quota`: what it waits for now is its quota's renewal (else the
    outage's end); `first`: when each was first met in this wait, which its bound counts from."""

    task: TaskInput
    cause: str
    quota: bool
    next_try: datetime
    heeds_asked: bool  # patch http-quota-waits: before it, an outage's waits were the backoff's alone
    first: dict[bool, datetime] = field(default_factory=dict)
    interval: timedelta = _UNREACHED_FIRST

    @classmethod
    def begin(cls, task: TaskInput, error: ActivityError, cause: str, now: datetime, *,
              heeds_asked: bool) -> ServiceWait:
        wait = cls(task, cause, False, now, heeds_asked)
        wait.failed(error, cause, now)
        return wait

    def failed(self, error: ActivityError, cause: str, now: datetime) -> bool:
        """A try failed (or the first run): when to try next. True when the note changes: a quota
        met (again: the next renewal), or the wait's reason changed."""
        quota, was = quota_used_up(error), (self.quota if self.first else None)
        self.cause, self.quota = cause, quota
        self.first.setdefault(quota, now)
        if quota:
            self.next_try = now + _asked(error) + _AFTER_RENEWAL
            return True
        if was is False:
            self.interval = min(self.interval * 2, _UNREACHED_MAX)
        # A service that asked for longer (a Retry-After past the activity's own retries) is
        # left alone that long.
        self.next_try = now + max(self.interval, _asked(error) if self.heeds_asked else timedelta(0))
        return was is not False

    @property
    def give_up(self) -> datetime:
        since = self.first[self.quota]
        return since + (timedelta(days=self.task.task.completion_timeout_days) if self.quota else UNREACHED_FOR)

    def note(self) -> TaskResult:
        """The task's pending result while it waits: what the request page and the evidence pack show."""
        if self.quota:
            said = (f"not yet done: {self.task.task.label}'s quota for today is used up; tried again by itself "
                    f"after {when(self.next_try - _AFTER_RENEWAL)}, until {when(self.give_up)}, then it needs attention")
        else:
            said = (f"not yet done, the system could not be reached: {self.cause}; tried again by itself, "
                    f"less and less often, until {when(self.give_up)}, then it needs attention")
        return TaskResult(system=self.task.task.system, action=self.task.task.action, status="pending",
                          external_id=PENDING_UNREACHED, attempt=self.task.attempt,
                          recipient=self.task.task.recipient, message=said)

    def given_up(self, now: datetime) -> str:
        """Why the task needs attention once its bound has passed: since when, and the last cause."""
        since = self.first[self.quota]
        if self.quota:
            days = self.task.task.completion_timeout_days
            return (f"{self.task.task.label}'s quota was still used up {days} day{'s' if days != 1 else ''} after "
                    f"it was first met ({when(since)}), tried again by itself after each renewal; last: {self.cause}")
        return (f"the system could not be reached for {lasting(now - since)} after its first failure "
                f"({when(since)}), tried again by itself; last: {self.cause}")
