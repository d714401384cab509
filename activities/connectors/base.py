"""The one interface every connector kind implements.

Connectors run inside activities only: they receive the subject's identities (personal data) from
the activity, and return results that carry counts and references, never personal data, because
results travel back into workflow history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Literal, Protocol

from dsrflow.settings import Settings
from policy.disclosure import Origin
from policy.model import Policy
from policy.systems import System

TaskStatus = Literal["done", "pending", "not_found", "needs_attention"]
# What an erasure by key erased: (key, action) per dataset.
Erased = dict[str, list[tuple[str, str]]]
# Called with what an erasure by key erased before its system commits.
ErasedHook = Callable[[Erased], Awaitable[None]]


@dataclass(frozen=True)
class Subject:
    """Who the request is about: read from Postgres by the activity, never put in a payload."""

    request_id: str
    email: str
    name: str | None = None
    customer_id: str | None = None
    # The task's attempt: staff running a task again make it 2, 3, ... A processor's job for a
    # later attempt is a new job: one it cancelled cannot be run again (activities/connectors/opendsr.py).
    attempt: int = 1
    # Records kept under a hold, "system.dataset" -> record keys: minimised, they no longer carry
    # the identities, but they are still the subject's and an access request must show them.
    held: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # Its request was closed unanswered (withdrawn, cancelled, refused) and the task is not a
    # restriction's lift (activities/told_closed.py `closed_unanswered`): a poll reads how a job stands
    # and asks the system nothing new (manual_email: no reminder, no e-mail that had not gone).
    closed: bool = False


class ClosedMeanwhile(Exception):
    """An access read stopped: its request was closed unanswered while the processor was still
    preparing the export (activities/connectors/opendsr.py). The package is not built, and the job
    is called off (`Connector.call_off_access`)."""


@dataclass(frozen=True)
class LegalClaimsHold:
    """A hold placed by compliance (Art. 17(3)(e)) that applies to this system."""

    id: str
    categories: tuple[str, ...] | None  # None: every category
    basis: str
    review_date: date


@dataclass(frozen=True)
class HeldRecord:
    dataset: str
    key: str
    hold_kind: str  # statutory | legal_claims
    hold_ref: str  # statute key or legal hold id
    until: date | None  # None: until the legal-claims hold is released


@dataclass(frozen=True)
class ErasureContext:
    today: date
    legal_holds: tuple[LegalClaimsHold, ...] = ()
    # Called with the outcome before a transactional system commits its erasure, to make the
    # evidence (erasure ledger, deferred erasures) durable first: a crash in between leaves
    # evidence of an erasure that the retry then completes, never an erasure without evidence.
    # A system that cannot do this leaves it uncalled, and the caller records after.
    before_commit: ActionHook | None = field(default=None, compare=False)
    # Only these records, by dataset, may be erased (None: all the subject's): a released
    # legal-claims hold erases what it kept, not what the subject holds now. Without it a
    # returning customer's new account, made after the request, went with the old request.
    only: Mapping[str, frozenset[str]] | None = None
    # A hold's deferred erasure of a processor (activities/deferred_processors.py), which runs on
    # its request long after the close, whatever the close was. Every other run on a closed
    # request stops before its first change, unless its request completed before it began (a
    # restriction's lift): a withdrawal's, a cancellation's or a denial's close means no further
    # action, however late a try, a retry or a run's next slice begins.
    after_close: bool = False
    # A released hold's erasure (activities/deferred.py): no task's run. A SaaS run keeps no
    # journal for it (activities/connectors/http.py): the task's result ended that journal, and on
    # a request still open its refusal ("a result ended the task") stopped the erasure of a system
    # kept whole before its first change.
    released_hold: bool = False

    def allows(self, dataset: str, key: Any) -> bool:
        return self.only is None or str(key) in self.only.get(dataset, ())


@dataclass(frozen=True)
class AccessRecord:
    """One record of the subject's data, for the access / portability package."""

    dataset: str
    category: str
    fields: dict[str, Any]
    # Where each field comes from: provided, observed, derived or inferred (policy/disclosure.py).
    origin_of: Mapping[str, Origin]


@dataclass
class ActionOutcome:
    """What one action did in one system. No personal data: counts, dataset names, references."""

    status: TaskStatus
    found: int = 0
    changed: int = 0
    kept: int = 0
    # Per-dataset counts, e.g. {"contacts": {"found": 1, "changed": 1}}
    datasets: dict[str, dict[str, int]] = field(default_factory=dict)
    # For asynchronous processors: their reference for the job, to poll or match callbacks.
    external_id: str | None = None
    # For asynchronous processors: when they expect to be done, so the first poll does not wait
    # for a callback that may have been lost.
    poll_after_seconds: int | None = None
    # An ask that has not reached the processor yet (manual_email: the relay did not take its
    # e-mail): pending all the same, checked again soon, but nobody has been asked.
    unsent: bool = False
    message: str | None = None
    # A sentence for the subject's response letter (e.g. when a processor states the data will
    # be gone); no personal data.
    note: str | None = None
    # Erasure only; record keys stay in the activity (ledger, deferred erasures), never in
    # workflow payloads.
    erased: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # dataset -> (key, action)
    held: list[HeldRecord] = field(default_factory=list)


# Called with an action's outcome before its effect is made (see Connector.rectify).
ActionHook = Callable[[ActionOutcome], Awaitable[None]]


class PermanentConnectorError(Exception):
    """A failure retrying cannot fix (bad credentials, 4xx): the task needs attention."""


class ExportPart(Protocol):
    """Where one (dataset, category) of an `export` goes: its records as JSON, one object a
    line followed by a comma (`{...},`), and as CSV rows without a header, each in chunks as
    they arrive."""

    async def json_lines(self, chunk: bytes) -> None: ...

    async def csv_rows(self, chunk: bytes) -> None: ...


# part(dataset, category, {column: origin}) -> where that part goes and the columns it takes
# (a portability package leaves derived and inferred ones out), or None to leave it all out.
# An export opens each (dataset, category) once.
PartOpener = Callable[[str, str, Mapping[str, Origin]], tuple[ExportPart, list[str]] | None]


class Connector(Protocol):
    # Whether an erasure commits all at once (a database transaction) or request by request (a
    # SaaS API), so that a retry after a lost worker may find part of it done.
    transactional: ClassVar[bool] = True
    # Whether the system is a processor that acts in its own time and says when it is done
    # (OpenDSR, e-mail): its erasure is pending until it confirms, and it is asked as a whole, not
    # record by record (activities/deferred_processors.py).
    answers_later: ClassVar[bool] = False

    def __init__(self, env: ConnectorEnv) -> None: ...

    def access(self, subject: Subject) -> AsyncIterator[AccessRecord]:
        """Every record of the subject's (an async generator in each kind)."""
        ...

    async def erase(self, subject: Subject, context: ErasureContext | None = None) -> ActionOutcome: ...

    # Rectification, restriction, its lifting and objection take `before_commit` as an erasure's
    # context does: called with the outcome before a system with a transaction commits, and
    # before the first request that changes anything in one without (a SaaS API), so that a
    # retry after a lost worker can report what the first try did. A processor that acts on its
    # own (OpenDSR, e-mail) leaves it uncalled: its job is on record before it is asked.

    async def rectify(self, subject: Subject, corrections: dict[str, str], *,
                      before_commit: ActionHook | None = None) -> ActionOutcome: ...

    async def restrict(self, subject: Subject, *, before_commit: ActionHook | None = None) -> ActionOutcome: ...

    async def lift_restriction(self, subject: Subject, *,
                               before_commit: ActionHook | None = None) -> ActionOutcome: ...

    async def object(self, subject: Subject, scope: str, *,
                     before_commit: ActionHook | None = None) -> ActionOutcome: ...

    async def lift_late(self, subject: Subject) -> ActionOutcome:
        """A lift that another restriction held, carried out by the start sweep once that one ended
        without coming into force (activities/held_lifts.py): no task of the lift waits for it, so
        nothing kept for a task's run (the http kind's journal) is used. The lift itself here."""
        return await self.lift_restriction(subject)

    async def status(self, subject: Subject, external_id: str) -> ActionOutcome:
        """For asynchronous processors: where the job stands now."""
        ...

    # Optional hooks: a kind that needs one overrides it (each kind subclasses this protocol, so
    # the defaults below are what "does not need it" means; callers never probe with getattr).

    def job_id(self, subject: Subject, action: str) -> str | None:
        """Asynchronous processors: the id the job will have, recorded before submission so that
        an early callback can be matched. None: the kind has no such id."""
        return None

    async def call_off_access(self, subject: Subject, action: str = "access") -> ActionOutcome | None:
        """Access (or portability) on a request closed unanswered while its package was being built:
        the job a processor was asked for is called off there (OpenDSR: activities/packages.py
        `_called_off`). `action`: the request's type, which its task's record is stored under (so
        that the call-off's events name the same task). None: the kind leaves nothing asked at the
        system (it is read at once)."""
        return None

    def carries_on_erasing(self, external_id: str) -> bool:
        """Whether a pending erasure's job id means the system held part of it back (a SaaS quota's
        day): it carries on by erasing again, with the holds and the evidence of an erasure, not by
        asking how a job stands."""
        return False

    async def held_back_so_far(self, subject: Subject) -> ActionOutcome:
        """What an erasure the system held back (`carries_on_erasing`) had done before it stopped:
        its counts, and a message that says them, for a task whose rest a hold then keeps."""
        return ActionOutcome(status="done")

    @staticmethod
    def needs_preparation(system: System, action: str) -> bool:
        """Whether `prepare` must run before any system acts (the http kind snapshots GA4's
        identifiers, which the analytics erasure removes)."""
        return False

    async def prepare(self, subject: Subject, action: str) -> None:
        """Take what this system needs from other systems, before any of them acts."""

    async def erase_keys(self, keys: Mapping[str, Sequence[str]], *,
                         before_commit: ErasedHook | None = None) -> Erased:
        """Erase records a hold kept, by dataset -> record keys, once the hold ends; returns
        (key, action) per dataset for those found. A connector with a transaction calls
        `before_commit` with that result before it commits (activities/ledger.py)."""
        raise PermanentConnectorError("this system's connector cannot erase kept records by key")

    async def unrestrict_keys(self, keys: Mapping[str, Sequence[str]]) -> int:
        """Lift the restriction an erasure's hold set on these records, by dataset -> record keys,
        once nothing keeps them so (activities/called_off_marks.py); the records changed. Only a
        sql system's hold marks its records (a restricted column): a processor kept whole was
        asked nothing, and a SaaS's statutory records are erased when their period ends."""
        return 0

    async def export(self, subject: Subject, part: PartOpener) -> bool:
        """Write the package's parts straight from the store (see ExportPart); False: the package
        builder reads `access` instead."""
        return False

    async def request_export(self, subject: Subject) -> ActionOutcome | None:
        """Processors without an API: ask for their export (an `access` task). None: the package
        reads this system itself, no task needed."""
        return None

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ConnectorEnv:
    """What a connector may need from its surroundings."""

    system_name: str
    system: System
    policy: Policy
    settings: Settings
    secret: bytes
    callback_url: str
    pool: Any = None  # the app database (asyncpg pool), for connectors that keep state there
    mailer: Any = None  # activities.mail.Mailer, for connectors that work by e-mail
    # activities.shared_connections.SharedConnections: what the worker keeps open for its
    # connectors (a CLI or a test without one has each connector open its own).
    connections: Any = None


def left_as_kept(count: int) -> str:
    """A correction's note on the records an erasure kept under a hold, which it left as they are."""
    return f"{count} record(s) kept under a hold since an erasure were left as kept: the law keeps them as they were"
