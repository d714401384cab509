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
