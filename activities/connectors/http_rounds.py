"""An `http` erasure reads again after its changes (activities/connectors/http.py), so that what it
reports is what the service holds when it ends.

A run reads each item's records once, and its journal keeps those reads so that every slice sends
the same changes: a record created after its item was read (a sync from another tool, the subject
signing up again) survived an erasure that reported success, the likelier the longer the run (hours
under a rate limit). Once an erasure has sent its changes it reads again, the same reads, fresh:
each such read is journaled under a name of its own (`@<attempt>.<n>`), so its slices and a staff
retry go on from it, not from the first pass's. The steps act on what it lists: a record listed
again after its deletion is deleted again, and counts only if the service says it was there (a
404 is nothing: a search lagging behind the deletes, as HubSpot's does, lists the records just
deleted for a while); a request for a whole dataset (delete by e-mail), whose answer says nothing
of which records were there, counts only records the run had not found before; a change made
before to a record that stays (a held customer minimised) is not made again. A read whose changes count nothing ends
it, and the result says so. Records still appearing at the ROUNDS-th read of an attempt (something
keeps adding them) make the task need staff, naming how many; the journal stays for their retry.

Only an erasure reads again: its result says the subject's records there are gone, which a
record added meanwhile makes false. A restriction, a correction or an objection says what it did
to the records it found, which stays true; a record added meanwhile is as one added after the run.
A run that found nothing reads nothing more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

from activities.connectors.base import ConnectorEnv, PermanentConnectorError
from activities.connectors.http_answers import UnreadAnswer
from activities.connectors.http_holds import holds_over
from activities.connectors.http_run import Budget, Run
from activities.connectors.http_steps import StepRunner, same, unseen
from policy.http_model import Step

Held = dict[str, dict[str, tuple[date, str]]]  # dataset -> record key -> (kept until, statute)
# Heard before the first step that changes anything: the run so far and the steps left (http.py).
Intent = Callable[[Run, list[Step]], Awaitable[None]]

# Reads after the changes in one attempt, before records that keep appearing need staff: the first
# finds what was added during the run (hours), the second what was added during the first's
# changes (seconds); one more still finding records is no coincidence.
ROUNDS = 3


class Rounds(StepRunner):
    """The reads after an erasure's changes, and the holds both passes work out."""

    env: ConnectorEnv

    def _hold(self, run: Run, name: str, today: date, before: Held | None = None) -> None:
        """What a statute keeps of the records `run` found and was not kept `before` (the run's
        first pass): `run.held`. The steps' templates see both."""
        try:
            held = holds_over(self.config, self.env.policy, run.found, today)
        except UnreadAnswer as exc:
            raise PermanentConnectorError(
                f"system {self.name}: {self.config.service}'s answer to {name} {exc}: "
                "what the statute keeps cannot be worked out, so nothing was erased") from None
        before = before or {}
        run.held = {}
        for dataset, kept in held.items():
            # New to the run, or kept longer than the first pass worked out (a customer held through
            # its invoices, one of which was issued while the erasure ran): erased at the later date.
            earlier = before.get(dataset, {})
            if new := {key: until for key, until in kept.items() if key not in earlier or until[0] > earlier[key][0]}:
                run.held[dataset] = new
        run.context["held"] = {dataset: sorted({*kept, *before.get(dataset, {})})
                               for dataset, kept in {**before, **held}.items()}

    async def _after_changes(self, steps: list[Step], run: Run, name: str, attempt: int, today: date | None,
                             before_effects: Intent | None) -> None:
        """Read again after the run's changes, acting on what is listed, until a read's changes
        count nothing or ROUNDS reads of this attempt did not get there (`run.still_appearing`)."""
        reads = [s for s in steps if s.effect is None]
        if run.handled is None or not reads or not any(run.found.values()):
            return
        run.checked = 0
        # An earlier attempt's reads after its changes (the task needed staff): gone on from, for
        # what their changes did; never the last word, since this attempt's changes came after.
        earlier = run.journal.earlier if run.journal is not None else set()
        for label in (f"@{a}.{n}" for a in sorted(earlier) for n in range(1, ROUNDS + 1)):
            if run.journal is not None and run.journal.has_step(reads[0].name + label):
                await self._round(steps, run, name, label, today, before_effects)
        for n in range(1, ROUNDS + 1):
            if not (appeared := await self._round(steps, run, name, f"@{attempt}.{n}", today, before_effects)):
                return
        run.still_appearing = appeared

    async def _round(self, steps: list[Step], run: Run, name: str, label: str, today: date | None,
                     before_effects: Intent | None) -> int:
        """One read after the changes and the changes it calls for: how many records they counted."""
        # A budget of its own: the first pass may have read up to the action's (5,000 lists and a
        # membership of each), and this one reads as much again.
        budget = Budget(run.budget.max_bytes, run.budget.max_records)
        listed = {dataset: frozenset(str(r.get(self.config.datasets[dataset].key)) for r in records)
                  for dataset, records in run.found.items() if dataset in self.config.datasets}
        fresh = Run(context={**run.context, "steps": {}}, budget=budget, only=run.only, leave=run.leave,
                    journal=run.journal, handled=run.handled, round=label, appeared={}, listed_before=listed)
        acting = []
        for step in steps:
            if step.effect is None:
                await self._read(step, self._items(step, fresh)[1], fresh, f"{name}.{step.name}")
            elif step.for_each != "identifiers":
                acting.append(step)
        if today is not None:
            self._hold(fresh, name, today, run.held)
        # What its changes will do is kept first (the ledger's rows of the records it deletes, the
        # holds of those it keeps), as in the first pass: nothing when they will do nothing.
        if before_effects is not None:
            await before_effects(fresh, acting)
        for step in acting:
            source, items = self._items(step, fresh)
            # One request for a whole dataset (delete by e-mail) goes again only for records listed again.
            if step.for_each or fresh.found.get(step.dataset or ""):
                await self._act(step, source, items, fresh, f"{name}.{step.name}")
        return _absorb(run, fresh)


def _absorb(run: Run, fresh: Run) -> int:
    """What a read after the changes found and did, into the run: the records its changes counted
    (of the datasets the steps change), and any other record not found before (an invoice of a
    customer the hold keeps). How many records its changes counted."""
    appeared = fresh.appeared or {}
    for dataset, records in fresh.found.items():
        new = appeared[dataset] if dataset in appeared else unseen(records, {same(r) for r in run.found.get(dataset, [])})
        if new:
            run.found.setdefault(dataset, []).extend(new)
    for dataset, counts in fresh.effects.items():
        for effect, n in counts.items():
            run.count(dataset, effect, n)
    for dataset, keys in fresh.erased.items():
        run.erased.setdefault(dataset, []).extend(keys)
    for value, values in fresh.collected.items():
        run.collected.setdefault(value, []).extend(values)
    for dataset, kept in fresh.held.items():
        run.held.setdefault(dataset, {}).update(kept)
    run.context["held"] = fresh.context["held"]
    count = sum(len(records) for records in appeared.values())
    if run.checked is not None:
        run.checked += count
    return count


def checked_words(service: str, run: Run) -> str | None:
    """What the result says of the reads after an erasure's changes."""
    if run.checked is None or run.still_appearing:
        return None
    if not run.checked:
        return f"read again after the changes, {service} listed nothing more to erase"
    return (f"{run.checked} record(s) added at {service} while the erasure ran were found by a read after its "
            "changes and erased too (minimised, if a hold keeps them); the read after that listed nothing more to "
            "erase")


def still_appearing(system: str, service: str, run: Run) -> str:
    """Why an erasure whose records kept appearing needs staff."""
    return (f"system {system}: records of the subject kept appearing at {service} while it was erased: the last of "
            f"{ROUNDS} reads after the changes still found {run.still_appearing} new ({run.checked} in all, each "
            "erased, or minimised if a hold keeps it); something keeps adding them (a sync from another tool, a "
            "sign-up form): stop it, then retry the task")


def set_aside_words(service: str, run: Run) -> str | None:
    """What the result says when an earlier attempt's run was not gone on from."""
    if run.journal is None or not run.journal.set_aside:
        return None
    return (f"an earlier attempt made {run.journal.set_aside} change(s) at {service} under another configuration "
            "of the system (its base URL or ids changed since): they are not in these counts")
