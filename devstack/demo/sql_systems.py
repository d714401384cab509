"""The demo processor systems that are SQL databases: `crm`, `analytics` and `billing`.

Seeded from `demo_subjects()` with fixed random seeds and fixed dates (relative to REFERENCE, not
to today), so every machine gets byte-identical rows. Seeding one database is one transaction that
ends by writing a `demo_meta` marker: a second call finds the marker and changes nothing, and a
crash half-way leaves nothing behind.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from devstack.demo.sql_schema import ADDED_COLUMNS, SCHEMAS, TABLE_COLUMNS
from devstack.demo.subjects import SEED, DemoSubject, demo_subjects
from devstack.postgres import EmbeddedPostgres

SQL_SYSTEMS = ("crm", "analytics", "billing")
# 2: crm contacts have last_seen_at; 3: and last_marketing_email_at; 4: and marketing_consent_at,
# and billing mandates have last_collection_on; 5: crm contacts have engagement_segment.
SEED_VERSION = "5"
# Every generated date lies before this instant; ada's invoices are fixed in 2025 and 2026.
REFERENCE = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)
_LOCK_KEY = 7_301_926  # advisory lock: two processes seeding the same database take turns

_TOPICS = [
    ("Server container does not start", "Our server-side container fails to start after the last deploy."),
    ("Invoice question", "Could you send the invoice again with our new VAT number?"),
    ("GA4 tag not firing", "The GA4 tag does not fire on the checkout page since yesterday."),
    ("Custom domain", "How do we set up a custom domain for our tagging server?"),
    ("Account access", "I cannot log in to app.onetagger.com anymore."),
]
_CHATS = [
    "Visitor: hi, is there a trial?\nAgent: yes, the demo gives you 14 days.",
    "Visitor: my preview mode is empty\nAgent: please clear the debug cookie and retry.",
    "Visitor: can I pay by SEPA?\nAgent: yes, you can sign a mandate in billing settings.",
]
_NOTES = [None, None, "Met at Tag Summit 2025", "Prefers Dutch", "Agency partner lead"]
_PATHS = ["/", "/pricing", "/features/server-side-tagging", "/docs/getting-started", "/blog/ga4",
          "/app/containers", "/app/billing", "/app/settings", "/help/custom-domain"]
_REFERRERS = [None, None, "https://www.google.com/", "https://www.linkedin.com/", "https://onetagger.com/"]
_ADA_INVOICES = [date(2025, 3, 31), date(2025, 10, 31), date(2026, 1, 31)]


def _rng(system: str) -> random.Random:
    return random.Random(f"{SEED}:{system}")


def _before(rng: random.Random, max_days: int, min_days: int = 1) -> datetime:
    return REFERENCE - timedelta(days=rng.randint(min_days, max_days), seconds=rng.randint(0, 86_399))


def _last_seen(rng: random.Random, subject: DemoSubject, created: datetime) -> datetime:
    """The contact's last user session. About one in five stopped using the account more than
    13 months before REFERENCE (or never came back after signing up), so the retention rule for
    inactive accounts has work to do; the rest were seen in the 150 days before REFERENCE."""
    if subject.index < 3:  # the README's subjects are active users
        return REFERENCE - timedelta(days=3 + subject.index, seconds=rng.randint(0, 86_399))
    if rng.random() < 0.2:
        span = max(int((REFERENCE - timedelta(days=400) - created).total_seconds()), 0)
        return created + timedelta(seconds=rng.randint(0, span))
    earliest = max(created, REFERENCE - timedelta(days=150))
    return earliest + timedelta(seconds=rng.randint(0, int((REFERENCE - earliest).total_seconds())))


def _last_marketing_email(rng: random.Random, subject: DemoSubject, created: datetime) -> datetime | None:
    """The last newsletter sent to a subscriber: the monthly one for most, but about one in seven
    stopped receiving them (bounced, paused) more than 12 months before REFERENCE, so the
    marketing retention rule has work to do. Non-subscribers never got one."""
    if not subject.in_email_marketing:
        return None
    if subject.index >= 3 and rng.random() < 0.15:
        latest = REFERENCE - timedelta(days=380)
        span = max(int((latest - created).total_seconds()), 0)
        return created + timedelta(seconds=rng.randint(0, span))
    return REFERENCE - timedelta(days=rng.randint(1, 30), seconds=rng.randint(0, 86_399))


def _marketing_consent(rng: random.Random, subject: DemoSubject, created: datetime,
                       last_mailed: datetime | None) -> datetime | None:
    """When a subscriber consented: at sign-up or in the two weeks after, before any newsletter."""
    if not subject.in_email_marketing:
        return None
    consent = created + timedelta(days=rng.randint(0, 14), seconds=rng.randint(0, 86_399))
    return min(consent, last_mailed) if last_mailed else consent


def _engagement_segment(profiling_opt_out: bool, last_seen: datetime) -> str | None:
    """The CRM's segment: from how long ago the contact last used the Service."""
    if profiling_opt_out:
        return None
    idle = REFERENCE - last_seen
    return "active user" if idle < timedelta(days=30) else "occasional user" if idle < timedelta(days=150) else "at risk"


def crm_rows(subjects: list[DemoSubject]) -> dict[str, list[tuple[Any, ...]]]:
    rng = _rng("crm")
    # Generators of their own: the other columns keep the values they had before these columns.
    seen_rng = random.Random(f"{SEED}:crm:last_seen")
    mailed_rng = random.Random(f"{SEED}:crm:last_marketing_email")
    consent_rng = random.Random(f"{SEED}:crm:marketing_consent")
    companies: dict[str, int] = {}
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLE_COLUMNS["crm"]}
    for s in (s for s in subjects if s.in_crm):
        company_id = None
        if s.company:
            if s.company not in companies:
                companies[s.company] = len(companies) + 1
                rows["companies"].append(
                    (companies[s.company], s.company, f"BE0{rng.randint(100000000, 999999999)}")
                )
            company_id = companies[s.company]
        created = _before(rng, 900, 200)
        contact_id = s.index + 1
        last_mailed = _last_marketing_email(mailed_rng, s, created)
        notes, opted_out = rng.choice(_NOTES), rng.random() < 0.1
        last_seen = _last_seen(seen_rng, s, created)
        rows["contacts"].append((
            contact_id, s.email, s.first_name, s.last_name, s.phone, company_id, notes,
            s.in_email_marketing, opted_out, False, created, last_seen,
            last_mailed, _marketing_consent(consent_rng, s, created, last_mailed),
            _engagement_segment(opted_out, last_seen),
        ))
        requests = {0: 2, 1: 1}.get(s.index, rng.randint(0, 3))
        for _ in range(requests):
            subject, body = rng.choice(_TOPICS)
            opened = created + timedelta(days=rng.randint(1, 180), seconds=rng.randint(0, 86_399))
            rows["support_requests"].append(
                (len(rows["support_requests"]) + 1, contact_id, subject, body, opened, False)
            )
        for _ in range({0: 1, 1: 1}.get(s.index, rng.randint(0, 2))):
            started = created + timedelta(days=rng.randint(1, 180), seconds=rng.randint(0, 86_399))
            rows["chat_transcripts"].append(
                (len(rows["chat_transcripts"]) + 1, contact_id, rng.choice(_CHATS), started, False)
            )
    return rows


def analytics_rows(subjects: list[DemoSubject]) -> dict[str, list[tuple[Any, ...]]]:
    rng = _rng("analytics")
    rows: dict[str, list[tuple[Any, ...]]] = {"users": [], "page_events": []}
    for s in (s for s in subjects if s.in_analytics):
        signup = _before(rng, 700, 60)
        rows["users"].append((s.customer_number, s.email, signup, False))
        client_id = f"GA1.1.{rng.randint(10**8, 10**9 - 1)}.{int(signup.timestamp())}"
        device_id = f"{rng.getrandbits(64):016x}"
        ip = ipaddress.ip_address(f"81.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        span = int((REFERENCE - signup).total_seconds())
        for _ in range(40 if s.index == 0 else rng.randint(20, 60)):
            rows["page_events"].append((
                len(rows["page_events"]) + 1, s.customer_number, client_id, ip, device_id,
                "https://onetagger.com" + rng.choice(_PATHS), rng.choice(_REFERRERS),
                signup + timedelta(seconds=rng.randint(0, span)), False,
            ))
    return rows


def billing_rows(subjects: list[DemoSubject]) -> dict[str, list[tuple[Any, ...]]]:
    rng = _rng("billing")
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLE_COLUMNS["billing"]}
    for s in (s for s in subjects if s.in_billing):
        customer_id = s.index + 1
        rows["customers"].append((
            customer_id, s.customer_number, s.email, s.name, s.company or None, s.vat_number,
            s.street, s.postcode, s.city, s.phone, rng.choice([None, None, "Pays yearly"]), False,
        ))
        if s.index == 0:
            issued = _ADA_INVOICES
        elif s.has_invoices:
            issued = sorted(_before(rng, 1000, 10).date() for _ in range(rng.randint(1, 5)))
        else:
            issued = []
        for day in issued:
            invoice_id = len(rows["invoices"]) + 1
            net = Decimal(rng.randint(2_900, 250_000)) / 100
            vat = (net * Decimal("0.21")).quantize(Decimal("0.01"))
            rows["invoices"].append((
                invoice_id, customer_id, f"OT-{day.year}-{invoice_id:06d}", day, net, vat, net + vat,
                "EUR", False,
            ))
            if s.index == 0 or rng.random() < 0.9:
                rows["payments"].append((
                    len(rows["payments"]) + 1, invoice_id, day + timedelta(days=rng.randint(0, 30)),
                    net + vat, rng.choice(["SEPA direct debit", "card", "bank transfer"]),
                    f"PAY-{len(rows['payments']) + 1:07d}", False,
                ))
        status = {0: "active", 1: "revoked"}.get(s.index)
        if status is None and rng.random() < 0.4:
            status = rng.choice(["active", "active", "revoked"])
        if status is not None:
            mandate_id = len(rows["mandates"]) + 1
            signed = _before(rng, 900, 30).date()
            rows["mandates"].append((
                mandate_id, customer_id, f"MND-{mandate_id:06d}", f"{rng.randint(0, 9999):04d}",
                signed, status, False, _last_collection(rows, customer_id, signed),
            ))
    return rows


def _last_collection(rows: dict[str, list[tuple[Any, ...]]], customer_id: int, signed: date) -> date | None:
    """The customer's last direct-debit payment since the mandate was signed (None: no collection)."""
    invoices = {r[0] for r in rows["invoices"] if r[1] == customer_id}
    collected = [r[2] for r in rows["payments"]
                 if r[1] in invoices and r[4] == "SEPA direct debit" and r[2] >= signed]
    return max(collected, default=None)


_ROWS = {"crm": crm_rows, "analytics": analytics_rows, "billing": billing_rows}


async def _upgrade(conn: asyncpg.Connection, system: str, version: str, subjects: list[DemoSubject]) -> None:
    """Bring a database seeded by an earlier SEED_VERSION up to date, keeping its data."""
    added = [a for a in ADDED_COLUMNS.get(system, []) if int(version) < int(a[0])]
    generated = _ROWS[system](subjects) if added else {}
    for _, table, column, kind in added:
        columns, rows = TABLE_COLUMNS[system][table], generated[table]
        await conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
        await conn.execute(
            f"UPDATE {table} t SET {column} = v.value FROM unnest($1::bigint[], $2::{kind}[]) "
            f"AS v(id, value) WHERE t.id = v.id AND t.{column} IS NULL",
            [r[columns.index("id")] for r in rows], [r[columns.index(column)] for r in rows],
        )
    await conn.execute("UPDATE demo_meta SET value = $1 WHERE key = 'seeded'", SEED_VERSION)


async def _seed(conn: asyncpg.Connection, system: str, subjects: list[DemoSubject]) -> bool:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        if await conn.fetchval("SELECT to_regclass('public.demo_meta')") is not None:
            version = await conn.fetchval("SELECT value FROM demo_meta WHERE key = 'seeded'")
            if version is not None:
                if version != SEED_VERSION:
                    await _upgrade(conn, system, version, subjects)
                return False
        await conn.execute(SCHEMAS[system])
        rows = _ROWS[system](subjects)
        for table, columns in TABLE_COLUMNS[system].items():
            await conn.copy_records_to_table(table, records=rows[table], columns=list(columns))
            # Statistics now, as a loaded database has them: before autovacuum gets to it, the
            # planner would scan all 38,000 page events to find one user's 40.
            await conn.execute(f"ANALYZE {table}")
            if columns[0] == "id":
                # Explicit ids were copied in; move the sequence past them for later inserts.
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        await conn.execute(
            "INSERT INTO demo_meta (key, value) VALUES ('seeded', $1), ('system', $2)",
            SEED_VERSION, system,
        )
    return True


async def ensure_demo_databases(
    server: EmbeddedPostgres | None,
    url_for: Callable[[str], str],
    names: Mapping[str, str] | None = None,
) -> dict[str, bool]:
    """Create (when `server` is given) and seed the demo databases; returns, per system, whether
    this call seeded it. `names` maps a system to its database name (default: the system name)."""
    names = {system: (names or {}).get(system, system) for system in SQL_SYSTEMS}
    subjects = demo_subjects()
    seeded: dict[str, bool] = {}
    for system in SQL_SYSTEMS:
        if server is not None:
            await server.ensure_database(names[system])
        conn = await asyncpg.connect(url_for(names[system]))
        try:
            seeded[system] = await _seed(conn, system, subjects)
        finally:
            await conn.close()
    return seeded
