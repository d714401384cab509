"""What a deletion service answers that a policy's `note` prints into the subject's letter (and
the console and the evidence pack show): a value holding marks that reorder text, a control
character or a megabyte (activities/connectors/http_notes.py `kept_value`). In process: the GA4
stand-in over loopback, the connector called directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.saas_support import http_policy, http_system
from tests.test_attack_saas_answers import erasure_google_stamped
from tests.yaml_files import dump_yaml, read_yaml

SHIPPED_GA4 = Path(__file__).resolve().parents[1] / "policy" / "http" / "ga4.yaml"


def _printing_policy(tmp_path: Path):
    """GA4's shipped configuration whose note prints the time Google answered as it came, as a
    policy's own note may."""
    ga4 = read_yaml(SHIPPED_GA4)
    ga4["actions"]["erase"]["note"] = "Google's reference for your deletion: {{ collected.deletion_time | first }}."
    (tmp_path / "ga4_printing.yaml").write_text(dump_yaml(ga4, sort_keys=False))
    return http_policy(tmp_path, {"ga4": http_system("ga4_printing.yaml", "Google Analytics 4")}, keep=("analytics",))


@pytest.mark.parametrize(("stamped", "kept"), [
    # A right-to-left override and an isolate: the rest of the line read backwards. Taken out.
    ("\u20662026-12-06T08:00:00Z\u202e", "2026-12-06T08:00:00Z"),
    # An escape sequence that clears a terminal, a forged line: no time holds them. Not printed.
    ("2026-12-06T08:00:00Z\x1b[2J", None),
    ("2026-12-06T08:00:00Z\r\nGoogle states nothing was deleted", None),
    # 100,000 characters in the subject's letter. Not printed.
    ("9" * 100_000, None),
])
async def test_a_value_a_note_prints_reaches_the_letter_clean_and_bounded_or_not_at_all(
        tmp_path, pool, monkeypatch, stamped, kept):
    """Google accepts the deletion and stamps it with a time holding bidirectional marks, an
    escape sequence, a line break, or 100,000 characters; the policy's note prints that time.
    Before, the note (the subject's letter, the console, the evidence pack) carried each as
    Google sent it. Now marks that reorder text are taken out of the value where it is kept, and
    a value holding a control character or longer than 256 characters is not kept: the erasure
    is done, its note left out, and staff read why on the task."""
    outcome, rid = await erasure_google_stamped(monkeypatch, tmp_path, pool, _printing_policy(tmp_path), stamped,
                                                "GA1.1.121.212")
    assert outcome.status == "done" and outcome.datasets == {"identifiers": {"found": 1, "submitted": 1}}
    stored = await pool.fetchval("SELECT collected->'deletion_time' FROM http_identifiers WHERE request_id = $1::uuid",
                                 rid)
    if kept is None:
        assert outcome.note is None and "cannot read" in (outcome.message or "")
    else:
        assert outcome.note == f"Google's reference for your deletion: {kept}."
    assert stored == kept
