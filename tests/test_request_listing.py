"""The staff queue `GET /v1/requests`: order by due date, keyset pages, filters, bad parameters,
and that the queue's queries read an index on a large table instead of the whole table."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.read_models.request_queries import RequestFilters, queue_cursor, queue_query
from bench.queue_listing import seed_queue
from dsrflow.infra.db import create_pool
from dsrflow.infra.metrics import _read_gauges
from tests.conftest import database_pool, make_database
from tests.controller_day import BRUSSELS, one_controller_day
from tests.support import api_client, assert_problem, staff_headers

TODAY = datetime.now(BRUSSELS).date()  # taken again by each test (`_within_one_day`)


@pytest.fixture(autouse=True)
async def _within_one_day() -> None:
    """Each test counts days from the controller's today as the API does when asked: the module's
    date, taken at collection, is taken again, and a day about to end is waited out."""
    global TODAY  # noqa: PLW0603 - the date every helper and test of this module counts from
    TODAY = await one_controller_day()


@pytest.fixture
async def queue_url(postgres) -> str:
    """A database of its own: the queue lists every request, so other tests' rows stay out."""
    return await make_database(postgres, "queue")


@pytest.fixture
async def queue_db(queue_url):
    pool = await create_pool(queue_url)
    yield pool
    await pool.close()


@pytest.fixture
async def http(settings, queue_url, queue_db):
    # Listing reads Postgres only: no Temporal client.
    async with api_client(settings.model_copy(update={"database_url": queue_url}), None, "unused") as client:
        client.headers.update(await staff_headers(queue_db, "agent"))
        yield client


async def seed(pool, *, due: int | None, status: str = "in_progress", type: str = "access",
               regime: str = "gdpr", extended: bool = False, stuck_task: bool = False,
               objection_alert: bool = False, failed_step: str | None = None, lift: str | None = None) -> str:
    """A request as its workflow leaves it; `due` is the current due date in days from today."""
    request_id = str(uuid.uuid4())
    current = TODAY + timedelta(days=due) if due is not None else None
    first = current - timedelta(days=60) if current and extended else current
    closed = status in ("completed", "denied", "cancelled", "closed_unverified")
    await pool.execute(
        """INSERT INTO dsr_requests (id, request_type, regime, country, channel, subject_email,
               received_at, status, policy_version, due_date, extended_due_date, current_due_date,
               extended, closed_at)
           VALUES ($1, $2, $3, 'BE', 'api', $4, $5, $6, 'v1', $7, $8, $9, $10, $11)""",
        request_id, type, regime, f"{request_id[:8]}@example.com", datetime.now(UTC), status,
        first, current, current, extended, datetime.now(UTC) if closed else None,
    )
    if stuck_task:
        await pool.execute(
            "INSERT INTO system_tasks (request_id, system, action, status) VALUES ($1, 'crm', 'erase', 'needs_attention')",
            request_id)
    if objection_alert:  # the workflow alerted staff to decide an objection (and nothing decided yet)
        await pool.execute(
            """INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id,
                   body_text, body_html)
               VALUES ($1, $2, 'staff_alert', 'privacy@example.com', 'Decide', $1, '', '')""",
            f"{request_id}:staff_alert:objection-decision", request_id)
    if lift:  # a completed restriction whose lift has been asked for: "lifting", or "lifted" since
        await pool.execute(
            """INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure,
                   lift_requested_at, lifted_at)
               VALUES ($1, 'h', '{accuracy_contested}', '{crm}', false, now(), $2)""",
            request_id, datetime.now(UTC) if lift == "lifted" else None)
    if failed_step:  # a step that failed: "open" waits for staff, "resolved" has been answered
        await pool.execute(
            """INSERT INTO step_troubles (request_id, trouble_key, step, message, transient, since, resolved_at)
               VALUES ($1, 'owed-send_letter:1', 'send_letter', '550 refused', false, now(), $2)""",
            request_id, datetime.now(UTC) if failed_step == "resolved" else None)
    return request_id


async def all_pages(http, params: dict, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        r = await http.get("/v1/requests", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_queue_is_ordered_by_due_date_then_id_across_pages(http, queue_db):
    dues = [5, 1, 1, 3, None, -2, 10, 1]
    ids = [await seed(queue_db, due=d) for d in dues]
    expected = [i for _, i in sorted(zip([d if d is not None else 10**6 for d in dues], ids, strict=True))]

    pages = await all_pages(http, {}, limit=3)

    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for page in pages for i in page] == expected


async def test_a_request_opened_between_pages_neither_repeats_nor_shifts_rows(http, queue_db):
    ids = [await seed(queue_db, due=d) for d in (2, 4, 6, 8)]
    first = (await http.get("/v1/requests", params={"limit": 2})).json()
    assert [i["id"] for i in first["items"]] == ids[:2]

    await seed(queue_db, due=1)  # sorts before the cursor: an OFFSET would repeat ids[1]
    second = (await http.get("/v1/requests", params={"limit": 2, "cursor": first["next_cursor"]})).json()

    assert [i["id"] for i in second["items"]] == ids[2:]
    assert second["next_cursor"] is None


@pytest.fixture
async def varied(queue_db) -> dict[str, str]:
    return {
        "open_overdue": await seed(queue_db, due=-1),
        "open_due_today": await seed(queue_db, due=0, type="erasure"),
        "closed_past_due": await seed(queue_db, due=-10, status="completed"),
        "extended": await seed(queue_db, due=30, extended=True),
        "approval": await seed(queue_db, due=3, status="awaiting_approval"),
        "stuck": await seed(queue_db, due=4, type="erasure", stuck_task=True),
        "stuck_but_cancelled": await seed(queue_db, due=2, type="erasure", status="cancelled", stuck_task=True),
        "objection_to_decide": await seed(queue_db, due=6, type="objection", objection_alert=True),
        # Denied, its letter refused by the relay and waiting for staff (workflows/owed_steps.py).
        "denied_letter_waits": await seed(queue_db, due=40, status="denied", failed_step="open"),
        "denied_letter_answered": await seed(queue_db, due=40, status="denied", failed_step="resolved"),
        "verifying": await seed(queue_db, due=20, status="awaiting_verification", type="portability", regime="uk_gdpr"),
        # Completed, and its restriction being lifted: a lift's task waits for staff (the
        # workflow still runs); once lifted, a task left over is history.
        "lift_stuck": await seed(queue_db, due=50, status="completed", type="restriction", stuck_task=True,
                                 lift="lifting"),
        "lifted_stuck": await seed(queue_db, due=50, status="completed", type="restriction", stuck_task=True,
                                   lift="lifted"),
        "no_due_date_yet": await seed(queue_db, due=None, status="awaiting_verification"),
    }


FILTERS = [
    pytest.param({}, set(), id="none"),  # empty set: every request
    pytest.param({"status": ["in_progress", "awaiting_approval"]},
                 {"open_overdue", "open_due_today", "extended", "approval", "stuck", "objection_to_decide"},
                 id="statuses"),
    pytest.param({"type": "erasure"}, {"open_due_today", "stuck", "stuck_but_cancelled"}, id="type"),
    pytest.param({"regime": "uk_gdpr"}, {"verifying"}, id="regime"),
    pytest.param({"overdue": "true"}, {"open_overdue"}, id="overdue"),
    pytest.param({"due_before": 1},  # days from today: the test's, not the collection's
                 {"open_overdue", "open_due_today", "closed_past_due"}, id="due_before"),
    pytest.param({"needs_attention": "true"}, {"approval", "stuck", "objection_to_decide", "denied_letter_waits",
                                               "lift_stuck"}, id="needs_attention"),
    pytest.param({"needs_attention": "true", "status": "in_progress"}, {"stuck", "objection_to_decide"}, id="combined"),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS)
async def test_filters(http, varied, params, expected):
    if "due_before" in params:
        params = {**params, "due_before": (TODAY + timedelta(days=params["due_before"])).isoformat()}
    r = await http.get("/v1/requests", params=params)

    assert r.status_code == 200, r.text
    found = {name for name, rid in varied.items() if rid in {i["id"] for i in r.json()["items"]}}
    assert found == (expected or set(varied))


async def test_the_metrics_count_a_lifts_task_waiting_for_staff(queue_db):
    """What the queue flags, the gauge the alert rule reads counts: a completed restriction whose
    lift's task waits for staff, not one lifted since (the row then is history)."""
    lifting, lifted = await seed(queue_db, due=50, status="completed", type="restriction", lift="lifting"), \
        await seed(queue_db, due=50, status="completed", type="restriction", lift="lifted")
    probe = f"probe_{uuid.uuid4().hex[:8]}"
    for rid, system in ((lifting, f"{probe}_lifting"), (lifted, f"{probe}_lifted")):
        await queue_db.execute("INSERT INTO system_tasks (request_id, system, action, status) "
                               "VALUES ($1, $2, 'lift_restriction', 'needs_attention')", rid, system)
    families = {f.name: f for f in await _read_gauges(queue_db, "Europe/Brussels")}
    counted = {s.labels["system"]: s.value for s in families["dsrflow_tasks_needing_attention"].samples}
    assert counted.get(f"{probe}_lifting") == 1 and f"{probe}_lifted" not in counted


async def test_not_overdue_is_the_complement(http, varied):
    r = await http.get("/v1/requests", params={"overdue": "false"})
    assert {i["id"] for i in r.json()["items"]} == set(varied.values()) - {varied["open_overdue"]}


async def test_rows_say_days_left_overdue_and_attention(http, varied):
    items = {i["id"]: i for i in (await http.get("/v1/requests")).json()["items"]}

    overdue = items[varied["open_overdue"]]
    assert (overdue["days_left"], overdue["overdue"], overdue["needs_attention"]) == (-1, True, False)
    assert items[varied["closed_past_due"]]["overdue"] is False
    assert items[varied["stuck"]]["needs_attention"] is True
    assert items[varied["stuck_but_cancelled"]]["needs_attention"] is False
    assert items[varied["denied_letter_waits"]]["needs_attention"] is True
    assert items[varied["denied_letter_answered"]]["needs_attention"] is False
    assert items[varied["lift_stuck"]]["needs_attention"] is True
    assert items[varied["lifted_stuck"]]["needs_attention"] is False
    extended = items[varied["extended"]]
    assert extended["current_due_date"] == (TODAY + timedelta(days=30)).isoformat()
    assert extended["due_date"] == (TODAY - timedelta(days=30)).isoformat()
    assert items[varied["no_due_date_yet"]]["days_left"] is None


@pytest.mark.parametrize("form", ["{id}", "dsr-{id}", "dsr-{id}-crm-erase-1"],
                         ids=["request-id", "workflow-id", "system-task-workflow-id"])
async def test_search_by_exact_request_id(http, varied, form):
    wanted = varied["stuck"]
    r = await http.get("/v1/requests", params={"q": form.format(id=wanted)})
    assert [i["id"] for i in r.json()["items"]] == [wanted]


BAD = [
    pytest.param({"status": "finished"}, "status", id="status"),
    pytest.param({"type": "gossip"}, "type", id="type"),
    pytest.param({"regime": "martian"}, "regime", id="regime"),
    pytest.param({"overdue": "perhaps"}, "overdue", id="overdue"),
    pytest.param({"needs_attention": "2"}, "needs_attention", id="needs_attention"),
    pytest.param({"stopped": "perhaps"}, "stopped", id="stopped"),
    pytest.param({"due_before": "31/12/2026"}, "due_before", id="due_before"),
    pytest.param({"q": "ada@example.com"}, "q", id="q"),
    pytest.param({"limit": "0"}, "limit", id="limit-low"),
    pytest.param({"limit": "5000"}, "limit", id="limit-high"),
    pytest.param({"cursor": "bm90LWEtY3Vyc29y"}, "cursor", id="cursor"),
]


@pytest.mark.parametrize(("params", "field"), BAD)
async def test_bad_parameter_is_422_naming_it(http, params, field):
    problem = assert_problem(await http.get("/v1/requests", params=params), 422)
    assert [e["field"].split(".")[0] for e in problem["errors"]] == [field], problem


async def test_listing_needs_staff(http):
    assert_problem(await http.get("/v1/requests", headers={"Authorization": ""}), 401)


PLANNED = [
    pytest.param(RequestFilters(), id="all"),
    pytest.param(RequestFilters(overdue=True), id="overdue"),
    pytest.param(RequestFilters(status=["in_progress"]), id="status"),
    pytest.param(RequestFilters(type="erasure"), id="type"),
    pytest.param(RequestFilters(needs_attention=True), id="needs_attention"),
    pytest.param(RequestFilters(due_before=TODAY + timedelta(days=3)), id="due_before"),
]


@pytest.fixture(scope="module")
async def big_queue(postgres):
    """100,000 requests (the benchmark's data)."""
    async with database_pool(postgres, "bigqueue", max_size=10) as (_, pool):
        await seed_queue(pool, 100_000, TODAY)
        yield pool


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize("filters", PLANNED)
@pytest.mark.parametrize("paged", [False, True], ids=["first-page", "later-page"])
async def test_queue_reads_an_index_not_the_whole_table(big_queue, filters, paged):
    cursor = queue_cursor(TODAY, str(uuid.UUID(int=0))) if paged else None
    sql, args = queue_query(filters, limit=50, cursor=cursor, today=TODAY)

    plan = (await big_queue.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]

    scans = [n for n in _nodes(plan) if n.get("Relation Name") == "dsr_requests"]
    assert scans and all(n["Node Type"] != "Seq Scan" for n in scans), json.dumps(plan, indent=1)
