"""How long one page of the staff queue takes with 100,000 requests, per filter and per search.

    .venv/bin/python -m bench.queue_listing [--rows 100000]

Starts an embedded PostgreSQL in a temporary directory, seeds the requests, hashes their
identities as `dsrflow migrate` does for requests stored before the search (timed), and prints the
median time of the first page and of a page deep in the queue (keyset cursor) per filter and for a
search by e-mail address and by customer number.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg

from api.read_models.request_queries import RequestFilters, list_requests, queue_cursor
from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from dsrflow.infra.db import create_pool
from dsrflow.infra.migrate import migrate
from dsrflow.stores.request_lookup import backfill_lookup_keys


async def seed_queue(pool: asyncpg.Pool, rows: int, today: date, *, open_every: int = 4) -> None:
    """`rows` requests: one in `open_every` open (none when 0), due dates spread over two years
    around `today`, one in three with a customer number (`C-<n>`), and one open erasure in about
    twelve with a system task waiting for staff. Their search hashes are left to
    dsrflow/stores/request_lookup.py's backfill, as for requests stored before the search."""
    await pool.execute(
        """INSERT INTO dsr_requests (id, request_type, regime, country, channel, subject_email, customer_id,
               received_at, status, policy_version, due_date, current_due_date)
           SELECT gen_random_uuid(),
                  (ARRAY['access','erasure','portability','rectification','restriction','objection'])[1 + n % 6],
                  'gdpr', 'BE', 'api', 'subject' || n || '@example.com',
                  CASE WHEN n % 3 = 0 THEN 'C-' || n END, now(),
                  CASE WHEN $3::int > 0 AND n % $3::int = 0 THEN 'in_progress' ELSE 'completed' END,
                  'v1', $1::date + (n % 730) - 365, $1::date + (n % 730) - 365
           FROM generate_series(1, $2::int) AS n""", today, rows, open_every)
    await pool.execute(
        """INSERT INTO system_tasks (request_id, system, action, status)
           SELECT id, 'crm', 'erase', 'needs_attention' FROM dsr_requests
           WHERE status = 'in_progress' AND request_type = 'erasure' AND random() < 0.08""")
    await pool.execute("ANALYZE")


CASES = {
    "all": RequestFilters(),
    "open": RequestFilters(status=["awaiting_verification", "in_progress", "awaiting_approval"]),
    "overdue": RequestFilters(overdue=True),
    "type=erasure": RequestFilters(type="erasure"),
    "needs_attention": RequestFilters(needs_attention=True),
    "due_before+30d": RequestFilters(due_before=date.today() + timedelta(days=30)),
    # A subject's requests, as staff look them up (the hash index of migrations/0025).
    "subject_email": RequestFilters(subject_email="Subject77@example.com"),
    "customer_id": RequestFilters(customer_id="c-99"),
}
SECRET = b"queue-listing benchmark secret.."


async def _median_ms(pool: asyncpg.Pool, filters: RequestFilters, cursor: str | None, today: date) -> float:
    times = []
    for _ in range(20):
        start = time.perf_counter()
        await list_requests(pool, filters, limit=50, cursor=cursor, today=today, secret=SECRET)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(rows: int) -> None:
    today = date.today()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data", free_port())
        server.start(Path(tmp) / "postgres.log")
        try:
            await server.wait_ready()
            await server.ensure_database("bench")
            await migrate(server.url("bench"))
            pool = await create_pool(server.url("bench"))
            await seed_queue(pool, rows, today)
            start = time.perf_counter()
            hashed = await backfill_lookup_keys(pool, SECRET)
            print(f"backfill: hashed the identities of {hashed} requests in {time.perf_counter() - start:.1f} s")
            await pool.execute("ANALYZE dsr_requests")
            deep = queue_cursor(today + timedelta(days=180), str(uuid.UUID(int=0)))
            print(f"{rows} requests; median of 20 runs, 50 rows a page")
            for name, filters in CASES.items():
                first = await _median_ms(pool, filters, None, today)
                later = await _median_ms(pool, filters, deep, today)
                print(f"  {name:<18} first page {first:6.1f} ms   deep page {later:6.1f} ms")
            await pool.close()
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().rows))
