"""How the `http` connector (activities/connectors/http.py) runs a step over its items: a read
collects each item's records, an action step sends one request per item and counts its effect. In
a task's action each item goes through the run's journal (http_journal.py): what an earlier attempt
of the run read or had answered is taken from there, and only the rest is asked of the service."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from activities.connectors.base import PermanentConnectorError
from activities.connectors.http_answers import dig
from activities.connectors.http_client import HttpExchange
from activities.connectors.http_notes import kept_value
from activities.connectors.http_quota import QuotaExhausted
from activities.connectors.http_run import Run
from dsrflow.infra.failpoints import failpoint
from policy.http_model import HttpConfig, Step


class StepRunner:
    """The steps' part of HttpConnector: its system's name, configuration and exchange."""

    name: str
    config: HttpConfig
    exchange: HttpExchange

    async def _read(self, step: Step, items: list[Any], run: Run, where: str) -> None:
        run.step_dataset[step.name] = step.dataset
        collected = run.by_step.setdefault(step.name, [])
        seen = {same(record) for record in collected}
        for index, item in enumerate(items):
            context = {**run.context, "item": item}
            if not self.exchange.truthy(step.if_, context, where):
                continue
            journal, kept_as = run.journal, step.name + run.round
            name = journal.item(kept_as, index, item) if journal else ""
            entry = journal.entry(kept_as, name) if journal else None
            if entry is not None and entry.state == "read":  # an earlier attempt of the run read it
                records: list[dict[str, Any]] = entry.value
                self._within_budget(run, where, read=entry.read_bytes, kept=len(records))
            else:
                if journal is not None:
                    await journal.check_time()
                read_before = run.budget.read
                records = []
                async for _, _, page in self.exchange.pages(step, where, context, run.budget):
                    if step.where is not None:
                        page = [r for r in page if self.exchange.truthy(step.where, {**context, "record": r}, where)]
                    if step.dataset and run.only is not None:
                        key = self.config.datasets[step.dataset].key
                        page = [r for r in page if r[key] in run.only.get(step.dataset, ())]
                    self._within_budget(run, where, kept=len(page))
                    records.extend(page)
                if journal is not None:
                    await journal.read(kept_as, name, records, run.budget.read - read_before)
            if step.dataset:
                # A record the service answered twice (offset pages that shifted as it changed,
                # the same list listed twice) is one record: found once, changed once, not a
                # second request answered 404 and counted as a record left.
                records = unseen(records, seen)
            collected.extend(records)
            if step.dataset:
                run.found.setdefault(step.dataset, []).extend(records)
        run.context["steps"] = {**run.context["steps"], step.name: collected}

    def _within_budget(self, run: Run, where: str, *, read: int = 0, kept: int = 0) -> None:
        if (exceeded := run.budget.over(read=read, kept=kept)) is not None:
            raise PermanentConnectorError(
                f"system {self.name}: {where} found {exceeded} in {self.config.service} in one action, "
                "far more than any subject's: stopped there")

    @staticmethod
    def _items(step: Step, run: Run) -> tuple[str | None, list[Any]]:
        """The dataset a step's items come from, and the items (one None: a single request)."""
        if not step.for_each:
            return step.dataset, [None]
        return run.step_dataset.get(step.for_each), run.by_step.get(step.for_each, [])

    async def _act(self, step: Step, source: str | None, items: list[Any], run: Run, where: str = "", *,
                   send: bool = True) -> None:
        """Send the step's request for each item its `if` chooses, and count what it did; with
        `send` false, count what it would do (every request answered as found)."""
        where = where or f"erase.{step.name}"
        key_field = self.config.datasets[source].key if source else None
        left = run.leave.get(source or "", frozenset())
        target = source or step.dataset or step.name
        if run.appeared is not None:
            run.appeared.setdefault(target, [])
        for index, item in enumerate(items):
            context = {**run.context, "item": item}
            if not self.exchange.truthy(step.if_, context, where):
                continue
            # A record still there after its change (a held customer minimised), listed again by a
            # read after the changes: changed once. A record listed again after its deletion is
            # there again (signed up again, synced back): deleted again.
            handled = run.handled if step.effect != "deleted" else None
            change = self._request_of(step, context, where) if handled is not None else None
            if handled is not None and change in handled:
                continue
            if left and isinstance(item, dict) and key_field and str(item.get(key_field)) in left:
                run.count(source or "", "left")
                continue
            counted = not send or (await self._change(step, where, context, run, index, item))[0]
            if send and handled is not None and change is not None:
                handled.add(change)
            if item is None and step.dataset:
                # One request for the whole dataset (e.g. delete by e-mail): count its records.
                records, key = run.found.get(step.dataset, []), self.config.datasets[step.dataset].key
                if run.listed_before is not None:  # a read after the changes: those it had not found before
                    before = run.listed_before.get(step.dataset, ())
                    records = [r for r in records if str(r.get(key)) not in before]
                if step.effect == "deleted":
                    # Not those an earlier step deleted one by one (HubSpot's contacts found under a
                    # secondary address, which a delete by address does not reach): counted there.
                    # The rest go in the ledger, as a delete by id's do; before, none did.
                    by_id = {erased for erased, _ in run.erased.get(target, [])}
                    records = [r for r in records if str(r.get(key)) not in by_id]
                    run.erased.setdefault(target, []).extend((str(r.get(key)), "deleted") for r in records)
                run.count(target, step.effect or "", len(records))
                if send and run.appeared is not None:
                    run.appeared[target].extend(records)
            elif counted:
                run.count(target, step.effect or "")
                if send and run.appeared is not None:
                    run.appeared[target].append(item)
            if step.effect == "deleted" and isinstance(item, dict) and key_field and item.get(key_field):
                run.erased.setdefault(target, []).append((str(item[key_field]), "deleted"))

    async def _change(self, step: Step, where: str, context: dict[str, Any], run: Run, index: int,
                      item: Any) -> tuple[bool, dict[str, Any]]:
        """Send an action step's request for one item, unless an earlier attempt of the run had
        its answer: whether it counts as the step's effect (not when the service says `missing`),
        and what the step collected from the answer."""
        journal, kept_as = run.journal, step.name + run.round
        name = journal.item(kept_as, index, item) if journal else ""
        entry = journal.entry(kept_as, name) if journal else None
        if entry is not None and entry.state == "answered":
            self._keep_collected(entry.value, run)
            return bool(entry.counted), entry.value or {}
        if journal is not None:
            await journal.check_time()
            await journal.sending(kept_as, name)  # refused once the task has ended (TaskEnded)
        started = self.exchange.requests_started
        try:
            if run.evidence is not None:
                keep, run.evidence = run.evidence, None
                await keep()
            status, document = await self._send(step, where, context, run)
        except PermanentConnectorError:
            if journal is not None and self.exchange.refused is not None:
                await journal.refused(kept_as, name, self.exchange.refused)
            raise
        except QuotaExhausted:
            # The day's quota gone (our ledger's, before the request went; or the service's answer
            # that it is): not made. Its "sending" row would say at a close that it may have been.
            if journal is not None and entry is None and not self.exchange.unsure_before:
                await journal.not_sent(kept_as, name)
            raise
        except asyncio.CancelledError:
            # Stopped (a worker shutting down, the attempt cancelled or timed out) before its
            # request went: waiting for the service's rate limit, or keeping the evidence. Its
            # "sending" row, the only one of the item (`entry`), would say a change may have been
            # made: at the request's close, "at least" (migration 0052), and to a retry, a 404 as
            # its effect. It goes; one an earlier try wrote stays, that request may have gone.
            if journal is not None and entry is None and self.exchange.requests_started == started:
                await journal.not_sent(kept_as, name)
            raise
        run.sent += 1
        failpoint("http-effect-sent", f"{self.name}#{run.sent}")
        values = self._collect(step, document, run)
        # Sent again after an attempt died waiting for its answer, or after a try in this one
        # whose answer was a 5xx or a lost connection: a `missing` answer (404, gone) is that
        # earlier request's doing, and its effect counts, once.
        counted = (status not in step.missing or (entry is not None and entry.state == "sending")
                   or self.exchange.unsure_before)
        if journal is not None:
            journal.answered(kept_as, name, status, counted, values)
        return counted, values

    def _request_of(self, step: Step, context: dict[str, Any], where: str) -> str:
        """The change a step's request for an item makes (its method, path, query and body), to
        tell one made before in the run."""
        spec, render = step.request, self.exchange.render_value
        return json.dumps([step.name, spec.method, self.exchange.render(spec.path, context, where, path=True),
                           render(spec.query, context, where),
                           render(spec.body, context, where) if spec.body is not None else None],
                          sort_keys=True, default=str)

    async def _send(self, step: Step, where: str, context: dict[str, Any], run: Run) -> tuple[int, Any]:
        """An action step's request for one item: the last answer's status and document (what
        `collect` reads), once its `confirm` holds."""
        status, document = 0, None
        async for status, document, _ in self.exchange.pages(step, where, context, run.budget):  # noqa: B007 - the last
            pass
        self.exchange.confirm(step, status, document, context, where)
        return status, document

    def _collect(self, step: Step, document: Any, run: Run) -> dict[str, Any]:
        values = {name: kept_value(dig(document, path)) for name, path in step.collect.items()}
        self._keep_collected(values, run)
        return values

    @staticmethod
    def _keep_collected(values: dict[str, Any], run: Run) -> None:
        for name, value in values.items():
            if value is not None:
                run.collected.setdefault(name, []).append(value)


def same(record: dict[str, Any]) -> str:
    """A record as a service answered it, for telling one answered twice from two."""
    return json.dumps(record, sort_keys=True, default=str)


def unseen(records: list[dict[str, Any]], seen: set[str]) -> list[dict[str, Any]]:
    """The records not answered before (`seen`, which takes them)."""
    new = []
    for record in records:
        if (answered := same(record)) not in seen:
            seen.add(answered)
            new.append(record)
    return new
