"""The chaos suite's verdicts: a pass under faults against the same requests run without faults.

Pure functions over PassState (bench/chaos_snapshot.py), so each one is tested on doctored
states too (tests/test_chaos_smoke.py): a check that cannot fail would be worth nothing.
Findings are per subject (the two passes share subjects, not request ids).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_snapshot import PassState, RowKey

UNOWNED = "(no subject: shared rows)"


@dataclass
class Findings:
    """Per subject, what differs from the clean pass; empty lists mean exactly as expected."""
    duplicate_letters: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    letter_mismatches: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    effect_mismatches: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    doubled_effects: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    missing_effects: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    task_mismatches: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    KINDS = ("duplicate_letters", "letter_mismatches", "effect_mismatches", "doubled_effects",
             "missing_effects", "task_mismatches")

    def count(self, kind: str, subjects: set[str] | None = None) -> int:
        found: dict[str, list[str]] = getattr(self, kind)
        return sum(len(items) for subject, items in found.items() if subjects is None or subject in subjects)

    def as_json(self, limit: int = 20) -> dict[str, Any]:
        """Each kind's total and its first `limit` findings (enough to start debugging)."""
        out: dict[str, Any] = {}
        for kind in self.KINDS:
            found: dict[str, list[str]] = getattr(self, kind)
            items = [f"{subject}: {item}" for subject in sorted(found) for item in found[subject]]
            out[kind] = {"count": len(items), "first": items[:limit]}
        return out


def letter_kinds(state: PassState) -> dict[str, Counter]:
    """Per subject, how many letters of each (purpose, recipient) the mailbox holds."""
    kinds: dict[str, Counter] = {email: Counter() for email in state.subjects.values()}
    for letter in state.mailbox:
        recipient = "subject" if letter.recipient == state.subjects[letter.request_id] else letter.recipient
        kinds[state.subjects[letter.request_id]][(letter.purpose, recipient)] += 1
    return kinds


def check_letters(expected: PassState, actual: PassState, findings: Findings) -> None:
    """Each letter exactly once: every (purpose, recipient) the clean pass sent, once, and
    nothing else; every message delivered once and recorded (sent_letters, manual_tasks); every
    recorded message delivered."""
    wanted = letter_kinds(expected)
    for subject, got in letter_kinds(actual).items():
        for kind in sorted(set(wanted.get(subject, {})) | set(got)):
            purpose, recipient = kind
            # Each kind the clean pass sent is wanted exactly once, even if the clean pass
            # itself duplicated it: comparing the clean pass with itself then finds that too.
            n, want = got[kind], min(wanted.get(subject, Counter())[kind], 1)
            if n > want:
                findings.duplicate_letters[subject].append(f"{purpose} to {recipient}: {n} e-mails, expected {want}")
            elif n < want:
                findings.letter_mismatches[subject].append(f"{purpose} to {recipient}: {n} e-mails, expected {want}")
    delivered = Counter((letter.request_id, letter.message_id) for letter in actual.mailbox)
    recorded = Counter((letter.request_id, letter.message_id) for letter in actual.recorded)
    purposes = {(letter.request_id, letter.message_id): letter.purpose for letter in actual.mailbox + actual.recorded}
    for key in sorted(set(delivered) | set(recorded)):
        subject = actual.subjects[key[0]]
        if delivered[key] and not recorded[key]:
            findings.letter_mismatches[subject].append(f"{purposes[key]} {key[1]} delivered but not recorded")
        elif recorded[key] and not delivered[key]:
            findings.letter_mismatches[subject].append(f"{purposes[key]} {key[1]} recorded but never delivered")
        if recorded[key] > 1:
            findings.letter_mismatches[subject].append(f"{purposes[key]} {key[1]} recorded {recorded[key]} times")


def check_tasks(expected: PassState, actual: PassState, findings: Findings) -> None:
    """Every system's task result as the clean pass recorded it for the same subject."""
    for subject, tasks in actual.tasks.items():
        wanted = expected.tasks.get(subject, {})
        for task in sorted(set(wanted) | set(tasks)):
            if task not in tasks:
                findings.task_mismatches[subject].append(f"{task}: no result")
            elif task not in wanted:
                findings.task_mismatches[subject].append(f"{task}: a result the clean pass has no task for")
            elif tasks[task] != wanted[task]:
                differ = {k: (wanted[task][k], tasks[task][k]) for k in wanted[task] if wanted[task][k] != tasks[task][k]}
                findings.task_mismatches[subject].append(f"{task}: (clean, chaos) {differ}")


def _counted(expected: dict[str, Counter], actual: dict[str, Counter], what: str, findings: Findings) -> None:
    for subject, got in actual.items():
        wanted = expected.get(subject, Counter())
        for entry in sorted(set(wanted) | set(got), key=str):
            if got[entry] > wanted[entry]:
                findings.doubled_effects[subject].append(f"{what} {entry}: {got[entry]} times, clean {wanted[entry]}")
            elif got[entry] < wanted[entry]:
                findings.missing_effects[subject].append(f"{what} {entry}: {got[entry]} times, clean {wanted[entry]}")


def check_effects(expected: PassState, actual: PassState, owners: dict[RowKey, str], findings: Findings) -> None:
    """Every row of the demo systems exactly as the clean pass left it (erased, minimised or
    untouched), and the erasure ledger and deferred erasures entry for entry."""
    for key in sorted(set(expected.rows) | set(actual.rows)):
        before, after = expected.rows.get(key), actual.rows.get(key)
        if before == after:
            continue
        subject = owners.get(key, UNOWNED)
        where = f"{key[0]}.{key[1]} {'/'.join(key[2])}"
        if before is None:
            findings.effect_mismatches[subject].append(f"{where}: a row the clean pass does not have")
        elif after is None:
            findings.effect_mismatches[subject].append(f"{where}: deleted, the clean pass kept it")
        else:
            columns = sorted(c for c in before if before[c] != after.get(c))
            findings.effect_mismatches[subject].append(f"{where}: differs in {', '.join(columns)}")
    _counted(expected.ledger, actual.ledger, "ledger", findings)
    _counted(expected.deferred, actual.deferred, "deferred erasure", findings)


def compare(expected: PassState, actual: PassState, owners: dict[RowKey, str]) -> Findings:
    findings = Findings()
    check_letters(expected, actual, findings)
    check_tasks(expected, actual, findings)
    check_effects(expected, actual, owners, findings)
    return findings


def coverage(seed: dict[RowKey, dict[str, Any]], clean: PassState) -> dict[str, Any]:
    """How much the checks had to compare: a check over nothing would pass whatever happened."""
    per_request = Counter(letter.request_id for letter in clean.mailbox)
    return {
        "demo_rows_compared": len(clean.rows),
        "demo_rows_changed_by_clean_pass": sum(seed.get(key) != row for key, row in clean.rows.items())
        + len(set(seed) - set(clean.rows)),
        "letters_per_request": dict(Counter(per_request[rid] for rid in clean.subjects)),
        "letter_purposes": dict(Counter(letter.purpose for letter in clean.mailbox)),
        "task_results_compared": sum(len(tasks) for tasks in clean.tasks.values()),
        "ledger_entries_compared": sum(sum(entries.values()) for entries in clean.ledger.values()),
    }
