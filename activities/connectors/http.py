"""The `http` connector: a SaaS API described by configuration (policy/http_model.py), not code.

An action runs its steps in order. Read steps collect records (into datasets for the access
package and the counts; by step name for later steps' `for_each`); action steps send one request
per item. Erasure first finds the records the way access does, works out which ones a statutory
hold keeps (policy/http_model.DatasetHold), and lets the steps' `if` templates choose between
minimising a held record and deleting a free one. Templates see:

    subject   {email, name, customer_id}      item     the for_each record
    vars      the configuration's vars        held     {dataset: [kept record keys]}
    steps     {step name: records so far}     corrections   (rectify) the corrected values

A step over `identifiers` sends one request per identifier snapshotted when the request was
planned (http_identifiers.py), each through the daily quota: when the quota runs out the task
stays pending, and the workflow's polling carries on with the rest on a later day.

A task's action may need more requests than one attempt's time allows (thousands of records under
the service's rate limit): its run keeps a journal (http_journal.py), stops near the end of its
slice, and the next attempt carries on from where it got to (workflows/system_task.py); a staff
retry of a run that stopped short goes on from it too. An erasure reads again after its changes
and erases what was added meanwhile (http_rounds.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.connectors import expand_env, placeholder_names
from activities.connectors.base import (
    AccessRecord,
    ActionHook,
    ActionOutcome,
    Connector,
    ConnectorEnv,
    Erased,
    ErasedHook,
    ErasureContext,
    PermanentConnectorError,
    Subject,
    left_as_kept,
)
from activities.connectors.bounded_http import bounded_client
from activities.connectors.http_auth import Credentials, read_secrets, refuse_plain_http
from activities.connectors.http_client import ANSWER_MIB, HttpExchange
from activities.connectors.http_holds import held_records
from activities.connectors.http_identifiers import (
    accepted_so_far,
    accepted_summary,
    mark_accepted,
    open_identifiers,
    snapshot_identifiers,
)
from activities.connectors.http_journal import Journal, RunContinues, config_hash, slice_end
from activities.connectors.http_notes import render_note
from activities.connectors.http_quota import QuotaExhausted, QuotaLedger, ServiceClock, renewal_words
from activities.connectors.http_rounds import Intent, Rounds, checked_words, set_aside_words, still_appearing
from activities.connectors.http_run import MIB, Budget, Run
from dsrflow.infra.failpoints import failpoint
from policy.http_model import Action, HttpConfig, Step
from policy.systems import System
from schemas.workflow import RUN_CONTINUES, dataset_changes

PENDING_QUOTA = "http-quota"  # external_id of a task waiting for the next quota day


class HttpConnector(Rounds, Connector):
    transactional = False

    def __init__(self, env: ConnectorEnv) -> None:
        self.env = env
        self.name = env.system_name
        try:
            env.system.http_config()  # as written (a policy that was not loaded by load_policy)
            # Non-secret settings may come from the environment (`${VAR:-default}`): URLs, ids.
            expanded = expand_env(env.system.config)
            self.config = HttpConfig.model_validate(expanded)
            self._config_hash = config_hash(expanded)  # what a run's journal may be gone on from
        except (KeyError, ValueError) as exc:
            raise PermanentConnectorError(f"system {self.name}: config: {exc.args[0]}") from None
        if env.settings.environment != "development":
            refuse_plain_http(self.name, self.config)
        secrets = read_secrets(self.name, self.config)
        self._http = bounded_client(limit=ANSWER_MIB * MIB, timeout=self.config.timeout_seconds)
        credentials = Credentials(self.name, self.config.service, self.config.auth, secrets, self._http)
        self.clock = ServiceClock()
        ledger = QuotaLedger(env.pool, f"{self.config.limits.key or self.name}", self.config.limits, self.clock)
        settings_from = placeholder_names(json.dumps(env.system.config, default=str)) - set(self.config.env_names())
        self.exchange = HttpExchange(self.name, self.config, credentials, self._http, ledger, settings_from=settings_from)

    @staticmethod
    def needs_preparation(system: System, action: str) -> bool:
        return action == "erase" and bool(system.http_config().identifiers)

    async def prepare(self, subject: Subject, action: str) -> None:
        if action == "erase" and self.config.identifiers:
            await snapshot_identifiers(self.env, self.config.identifiers, subject)

    # -- the Connector interface -----------------------------------------------------------

    async def access(self, subject: Subject) -> AsyncIterator[AccessRecord]:
        action = self.config.actions.access
        if action is None:
            return
        run = await self._run(action, subject, "access")
        for dataset_name, records in run.found.items():
            dataset = self.config.datasets[dataset_name]
            for record in records:
                fields = {k: record.get(k) for k in dataset.fields} if dataset.fields else record
                yield AccessRecord(dataset=dataset_name, category=dataset.category,
                                   fields=fields, origin_of=dict.fromkeys(fields, dataset.origin))

    async def erase(self, subject: Subject, context: ErasureContext | None = None) -> ActionOutcome:
        action = self.config.actions.erase
        if action is None:
            return self._manual("erasure")
        today = context.today if context else datetime.now(UTC).date()
        intent = self._intent(action, subject, context.before_commit if context else None, self._erasure_outcome)
        run = await self._run(action, subject, "erase", today=today, before_effects=intent,
                              only=context.only if context else None,
                              after_close=context.after_close if context else False,
                              journal=not (context and context.released_hold))
        return await self._erasure_outcome(action, run, subject)

    async def _erasure_outcome(self, action: Action, run: Run, subject: Subject) -> ActionOutcome:
        outcome = await self._outcome(action, run, subject)
        outcome.erased = run.erasures()
        outcome.held = held_records(run.held)
        outcome.kept = len(outcome.held)
        return outcome

    async def erase_keys(self, keys: Mapping[str, Sequence[str]], *,
                         before_commit: ErasedHook | None = None) -> Erased:
        """A hold ended: run the erase action's deleting steps for these records, by key. A SaaS
        API has no transaction: `before_commit` hears what the steps are about to delete before
        the first request goes."""
        action = self.config.actions.erase
        if action is None:
            return {}
        deleting = []
        for step in action.steps:
            source = self._source_dataset(action, step.for_each)
            if step.effect == "deleted" and source is not None and source in keys:
                deleting.append((step, source, [{self.config.datasets[source].key: key} for key in keys[source]]))
        if before_commit is not None:
            planned = self._new_run(self._context(None))
            for step, source, items in deleting:
                await self._act(step, source, items, planned, send=False)
            if erasures := planned.erasures():
                await before_commit(erasures)
        run = self._new_run(self._context(None))
        for step, source, items in deleting:
            await self._act(step, source, items, run)
        return run.erasures()

    def carries_on_erasing(self, external_id: str) -> bool:
        return external_id == PENDING_QUOTA  # what the quota held back: `erase` carries on with it

    async def held_back_so_far(self, subject: Subject) -> ActionOutcome:
        return await accepted_so_far(self.env, subject.request_id, self.config.service)

    async def status(self, subject: Subject, external_id: str) -> ActionOutcome:
        if self.carries_on_erasing(external_id):
            # Without the erasure's holds and evidence: its callers erase instead (activities/fanout.py).
            raise PermanentConnectorError(f"system {self.name}: an erasure the quota held back carries on by "
                                          "erasing, not by asking how it stands")
        return ActionOutcome(status="done")

    async def object(self, subject: Subject, scope: str, *,
                     before_commit: ActionHook | None = None) -> ActionOutcome:
        action = next((a for name, a in self.config.actions.object.items() if name == scope), None)
        if action is None:
            return ActionOutcome(status="not_found", message=f"{self.config.service} is not configured "
                                 f"for objections to {scope}: nothing to act on there")
        intent = self._intent(action, subject, before_commit, self._outcome)
        return await self._outcome(action, await self._run(action, subject, f"object.{scope}", before_effects=intent),
                                   subject)

    async def rectify(self, subject: Subject, corrections: dict[str, str], *,
                      before_commit: ActionHook | None = None) -> ActionOutcome:
        # A record an erasure kept under a hold (the minimised customer that kept invoices name)
        # stays as the law keeps it, whatever the configuration's steps would send: as in a sql
        # system (SqlConnector._set_everywhere), a correction changes the records in use only.
        leave = {name: frozenset(keys) for name in self.config.datasets
                 if (keys := subject.held.get(f"{self.name}.{name}"))}
        return await self._simple("rectify", "rectification", subject, before_commit, {"corrections": corrections},
                                  leave=leave)

    async def restrict(self, subject: Subject, *, before_commit: ActionHook | None = None) -> ActionOutcome:
        return await self._simple("restrict", "restriction", subject, before_commit)

    async def lift_restriction(self, subject: Subject, *,
                               before_commit: ActionHook | None = None) -> ActionOutcome:
        return await self._simple("lift_restriction", "lifting a restriction", subject, before_commit)

    async def lift_late(self, subject: Subject) -> ActionOutcome:
        # Without a journal: its rows are keyed by a task's run, and this is none. The lift's own
        # task ended long ago (its journal writes would be refused as ended), and its request has
        # closed by its lift (a closed request's writes keep nothing). A sweep killed part-way
        # lifts again, whole, at its next run: un-restricting what is not restricted changes nothing.
        return await self._simple("lift_restriction", "lifting a restriction", subject, None, journal=False)

    async def close(self) -> None:
        await self._http.aclose()

    # -- running actions -------------------------------------------------------------------

    async def _simple(self, name: str, what: str, subject: Subject, before_commit: ActionHook | None,
                      extra: dict[str, Any] | None = None,
                      leave: Mapping[str, frozenset[str]] | None = None, journal: bool = True) -> ActionOutcome:
        action = getattr(self.config.actions, name)
        if action is None:
            return self._manual(what)
        intent = self._intent(action, subject, before_commit, self._outcome)
        return await self._outcome(action, await self._run(action, subject, name, extra=extra, before_effects=intent,
                                                           leave=leave, journal=journal), subject)

    def _intent(self, action: Action, subject: Subject, keep: ActionHook | None,
                outcome_of: Callable[[Action, Run, Subject], Awaitable[ActionOutcome]]) -> Intent | None:
        """What `_run` calls before the steps that change anything: a SaaS API has no transaction,
        so the outcome the steps are about to have is kept (`keep`) before the first request that
        changes anything. A process that dies part-way or right after leaves it; the retry finds less
        (or nothing) left to do (activities/fanout.py reports the two together), never "not found"
        for what was done. It is kept by that first change (`Run.evidence`, http_steps.py), once the
        change's journal write has found the task not ended: an attempt that staff's resolution
        ended first keeps no evidence of changes it will never make. A process that dies between
        that write and the evidence has sent nothing, and its retry keeps the evidence first too."""
        if keep is None:
            return None

        async def intent(run: Run, remaining: list[Step]) -> None:
            acting = [s for s in remaining if s.effect and s.for_each != "identifiers"]
            if not acting:  # identifiers keep their own record (http_identifiers.py)
                return
            planned = run.planning()
            for step in acting:
                await self._act(step, *self._items(step, planned), planned, step.name, send=False)
            outcome = await outcome_of(action, planned, subject)
            if outcome.changed or outcome.held:
                run.evidence = partial(keep, outcome)
        return intent

    def _manual(self, what: str) -> ActionOutcome:
        return ActionOutcome(status="needs_attention", message=(
            f"the {self.config.service} configuration of system {self.name} has no requests for {what}: "
            f"carry it out in {self.config.service} by hand, then resolve the task"))

    def _new_run(self, context: dict[str, Any], **options: Any) -> Run:
        return Run(context=context, budget=Budget(self.config.max_read_mib * MIB, self.config.max_records), **options)

    def _context(self, subject: Subject | None) -> dict[str, Any]:
        who = {"email": subject.email, "name": subject.name, "customer_id": subject.customer_id} if subject else {}
        return {"subject": who, "vars": self.config.vars, "steps": {}, "held": {}, "corrections": {}}

    def _source_dataset(self, action: Action, step_name: str | None) -> str | None:
        for step in self._steps(action):
            if step.name == step_name:
                return step.dataset
        return None

    def _steps(self, action: Action) -> list[Step]:
        found = getattr(self.config.actions, action.find).steps if action.find else []
        return [*found, *action.steps]

    async def _run(self, action: Action, subject: Subject, name: str, *, today: date | None = None,
                   extra: dict[str, Any] | None = None, before_effects: Intent | None = None,
                   only: Mapping[str, frozenset[str]] | None = None,
                   leave: Mapping[str, frozenset[str]] | None = None, after_close: bool = False,
                   journal: bool = True) -> Run:
        """Run the action's steps. Before the first step that changes anything, an erasure
        (`today` given) works out the holds, and `before_effects` hears the steps left. `only`:
        the records found that the run may act on, by dataset (ErasureContext.only); `leave`:
        those it may not change (counted as `left`); `after_close`: ErasureContext.after_close;
        `journal` false: no task's run (a held lift the start sweep carries out, `lift_late`)."""
        run = self._new_run({**self._context(subject), **(extra or {})}, only=only, leave=leave or {})
        # A task's action, which may outlast an attempt: not the access package's reads, nor a
        # released hold's erasure of named records (`only`, activities/deferred.py), which is no
        # task (nothing would end its journal) and shares the task's request and attempt.
        if journal and name != "access" and only is None and self.env.pool is not None:
            run.journal = await Journal.open(self.env.pool, self.env.secret,
                                             (subject.request_id, self.name, name, subject.attempt),
                                             slice_end(self.env.settings), self._config_hash, after_close=after_close)
        if name == "erase" and only is None:
            run.handled = set()  # a task's erasure reads again after its changes (http_rounds.py)
        acting = False
        steps = self._steps(action)
        try:
            for i, step in enumerate(steps):
                where = f"{name}.{step.name}"
                if step.effect is not None and not acting:
                    acting = True
                    if today is not None:
                        self._hold(run, name, today)
                    if before_effects is not None:
                        await before_effects(run, steps[i:])
                if step.for_each == "identifiers":
                    await self._identifiers(step, subject, run, where)
                    if run.waiting:
                        break
                    continue
                source, items = self._items(step, run)
                if step.effect is not None:
                    await self._act(step, source, items, run, where)
                else:
                    await self._read(step, items, run, where)
            if not run.waiting:
                await self._after_changes(steps, run, name, subject.attempt, today, before_effects)
        except QuotaExhausted as exc:
            # Not the identifiers' own pacing: the whole attempt waits for the new quota day.
            delay = max(exc.resumes_at - self.clock.now(), timedelta(seconds=1))
            raise ApplicationError(f"system {self.name}: {exc}", type="HttpQuotaExhausted",
                                   next_retry_delay=delay) from None
        except RunContinues as exc:
            # Not a failure: the workflow starts the next attempt at once, which carries on.
            # Benign: Temporal's SDK neither logs it as a warning nor counts it in
            # temporal_activity_execution_failed (DsrActivityFailureRate would page for a run
            # that is only long).
            raise ApplicationError(
                f"system {self.name}: {name} did {exc.done} of its requests to {self.config.service} in this "
                "attempt's time; the next attempt carries on from there", type=RUN_CONTINUES,
                non_retryable=True, category=ApplicationErrorCategory.BENIGN) from None
        if run.journal is not None:
            # The last answers, for a process that dies before the result is kept (the result, or
            # staff's resolution, takes them: http_journal.py).
            await run.journal.flush()
        return run


    async def _identifiers(self, step: Step, subject: Subject, run: Run, where: str) -> None:
        accepted = 0
        for row in await open_identifiers(self.env, subject.request_id):
            context = {**run.context, "item": {"type": row["id_type"], "value": row["value"]}}
            if not self.exchange.truthy(step.if_, context, where):
                continue
            # Through the run's journal as every change (http_steps.py `_change`): not sent once
            # the request closed or the task ended, and counted by a close. Before, a GA4 erasure
            # went on asking Google to delete after a withdrawal, uncounted. Named by the
            # identifier's hash, not its place: the open ones shift as those before are accepted.
            try:
                _, collected = await self._change(step, where, context, run, 0, {"identifier": row["value_hash"]})
            except QuotaExhausted as exc:
                run.waiting = exc
                return
            await mark_accepted(self.env, subject.request_id, row["id_type"], row["value_hash"], collected)
            accepted += 1
            failpoint("http-identifier-accepted", f"{self.name}#{accepted}")  # the task's result not yet kept

    async def _outcome(self, action: Action, run: Run, subject: Subject) -> ActionOutcome:
        datasets: dict[str, dict[str, int]] = {}
        for name, records in run.found.items():
            datasets[name] = {"found": len(records)}
        for name, effects in run.effects.items():
            datasets.setdefault(name, {"found": 0}).update(effects)
        for name, keys in run.held.items():
            datasets.setdefault(name, {"found": 0})["kept"] = len(keys)
        collected = run.collected
        if any(s.for_each == "identifiers" for s in self._steps(action)):
            total, accepted, collected = await accepted_summary(self.env, subject.request_id)
            datasets["identifiers"] = {"found": total, "submitted": accepted}
            if run.waiting is not None:
                return ActionOutcome(
                    status="pending", external_id=PENDING_QUOTA, datasets=datasets, found=total,
                    changed=accepted, message=(
                        f"{accepted} of {total} identifiers accepted by {self.config.service}; its daily quota "
                        f"({run.waiting.limit}) is used up, the rest follows after "
                        f"{renewal_words(run.waiting.resumes_at)}"))
        for counts in datasets.values():
            # A record a correction left as an erasure kept it is counted apart from those found,
            # as the sql connector counts it: `found` is what the correction could act on.
            if counts.get("left"):
                counts["found"] = max(counts.get("found", 0) - counts["left"], 0)
        found = sum(c.get("found", 0) for c in datasets.values())
        changed = sum(dataset_changes(c) for c in datasets.values())
        left = sum(c.get("left", 0) for c in datasets.values())
        if not found and not changed and not left:
            where = sorted({i.system for i in self.config.identifiers})
            message = (f"no identifiers of the subject in {', '.join(where)} to ask {self.config.service} about"
                       if "identifiers" in datasets else f"{self.config.service} holds no record of the subject")
            return ActionOutcome(status="not_found", datasets=datasets, message=message)
        if run.still_appearing:
            return ActionOutcome(status="needs_attention", found=found, changed=changed, datasets=datasets,
                                 message=still_appearing(self.name, self.config.service, run))
        since = await self.env.pool.fetchval("SELECT received_at FROM dsr_requests WHERE id = $1::uuid",
                                             subject.request_id) if action.note and self.env.pool else None
        note = render_note(action.note, collected, self.clock.now(), since) if action.note else None
        unread = (f"{self.config.service} answered with a value its note cannot read (e.g. a time outside "
                  "the calendar or before the request): the letter says nothing of when its deletion completes"
                  if action.note and note is None else None)
        kept = left_as_kept(left) if left else None
        words = (unread, kept, checked_words(self.config.service, run), set_aside_words(self.config.service, run))
        return ActionOutcome(status="done", found=found, changed=changed, datasets=datasets, note=note,
                             message="; ".join(m for m in words if m) or None)
