"""Session fixtures: real PostgreSQL, Temporal (dev server and time-skipping server), SMTP sink.

Everything runs from the packaged binaries over loopback; nothing is mocked but, where a test says
so, an activity replaced by a fake registered under the real activity's name.
"""

from __future__ import annotations

import contextlib
import gc
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, async_playwright
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from devstack.policy_copies import only_systems
from devstack.postgres import NO_FSYNC_VARIABLE, EmbeddedPostgres
from devstack.processes import find_binary, free_port
from devstack.smtp_sink import MailSink
from dsrflow.crypto.keys import load_keyring
from dsrflow.infra.db import create_pool
from dsrflow.infra.logging import configure_logging
from dsrflow.infra.migrate import migrate
from dsrflow.infra.ports import SHARE_VARIABLE as PORT_SHARE_VARIABLE
from dsrflow.infra.temporal_client import build_data_converter
from dsrflow.settings import Settings
from policy.model import DEFAULT_POLICY
from tests.pools import register_session_pool, server_execute, session_pool_on
from tests.sql_demo import systems, template  # noqa: F401 (fixtures for the sql connector's tests)
from tests.yaml_files import dump_yaml, read_yaml
from workflows.search_attributes import SEARCH_ATTRIBUTES

# The modules that take longest (from a minute and a half down to half a minute on 2 cores), run
# first: `make test` hands whole modules to four pytest-xdist workers in this order
# (docs/testing.md#how-the-suite-is-kept-fast), so a long module started last would leave one
# worker busy while the others idle. Those that run whole stacks of processes (and take
# both cores) come one in three, between those that mostly wait (timeouts, backoffs, a browser's
# polls), so that the workers seldom run stacks at once. A new module past half a minute belongs here.
RUN_FIRST = (
    "test_docs_commands.py", "test_crash_windows.py", "test_saas_long_runs.py", "test_browser_task_actions.py",
    "test_browser_actions.py", "test_bench_smoke.py", "test_outages.py", "test_fanout.py", "test_browser_console.py",
    "test_devstack_restarts.py", "test_browser_portal_access.py", "test_letter_languages.py", "test_remedies.py",
    "test_chaos_smoke.py", "test_crash_windows_later.py", "test_holds.py", "test_retention.py",
    "test_multi_process.py", "test_crash_processor_asks.py", "test_request_listing.py", "test_subject_search.py",
    "test_readme.py", "test_crash_uploads.py", "test_lifecycle.py", "test_processor_exports.py",
    "test_browser_owed.py", "test_browser_untold.py", "test_request_journeys.py", "test_up.py",
    "test_browser_audit_queue.py", "test_access_crash.py", "test_browser_review.py", "test_saas_crash.py",
    "test_saas_ga4.py", "test_restriction_crash.py", "test_newuser_stack.py", "test_deferred_processors.py",
    "test_browser_more_actions.py", "test_browser_navigation.py", "test_browser_audit_request.py",
    "test_browser_audit_statuses.py", "test_crash_holds.py",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--screenshots", action="store_true",
                     help="the browser tests save a screenshot of each step in tests/artifacts/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """RUN_FIRST's modules first, in its order; the rest as collected (each module's tests stay
    together). And each test its own node id: schemathesis names each operation's test
    `test_x[GET /path]` but gives them all the function's node id, and pytest-xdist, which hands
    tests out by node id, would run one operation of tests/test_api_fuzz.py instead of all."""
    rank = {name: i for i, name in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(RUN_FIRST)))
    for item in items:
        if item.name.endswith("]") and not item.nodeid.endswith("]"):
            # pytest 9 builds a node id from the callspec, which schemathesis's items have none of.
            item._id = item._id.with_params(item.name[item.name.index("[") + 1:-1])
    shared = [nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1]
    if shared:
        raise pytest.UsageError(f"tests share a node id (pytest-xdist would run one of each): {shared[:5]}")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything collection built (every test module, the app, its policy, the SDK) is kept for
    the whole run: frozen out of the garbage collector's generations, its collections no longer
    walk it again and again. Measured on one process, three runs each: 5.6-6.6 s of user CPU for
    three letter modules against 6.8-7.5 s (13-20 % less), 3-12 % less on the workflow journeys,
    the same peak memory. As the worker does after start-up (workers/dsr_worker.py).

    And the youngest generation is collected every 50,000 allocations instead of 700: the
    tests' objects (pages, letters, payloads) live for a test at most, so collecting them less
    often holds little more memory for a moment (3-7 % less user CPU on four in-process modules,
    three runs each)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dsrflow-home")


@contextlib.asynccontextmanager
async def running_postgres(directory: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL server of its own, data and log under `directory`, stopped afterwards."""
    server = EmbeddedPostgres(directory / "data", free_port())
    server.start(directory / "postgres.log")
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedPostgres]:
    async with running_postgres(tmp_path_factory.mktemp("pg")) as server:
        yield server


# A database migrated once on each PostgreSQL server (by its data directory), never used directly:
# each new database is a copy of it. A copy takes 0.2-0.3 s, creating and migrating one 0.4-0.6 s,
# and the suite makes one for every fan-out stack and for many modules. Every migration still runs
# from the empty database on each server, and tests/test_migrations.py runs them on its own.
_MIGRATED: dict[Path, str] = {}


async def make_database(server: EmbeddedPostgres, prefix: str = "t") -> str:
    """A new, migrated database; returns its URL."""
    if server.data_dir not in _MIGRATED:
        migrated = f"migrated_{uuid.uuid4().hex[:10]}"
        await server.ensure_database(migrated)
        await migrate(server.url(migrated))
        _MIGRATED[server.data_dir] = migrated
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await server_execute(server.url(), f'CREATE DATABASE "{name}" TEMPLATE "{_MIGRATED[server.data_dir]}"')
    return server.url(name)


@contextlib.asynccontextmanager
async def database_pool(server: EmbeddedPostgres, prefix: str, *,
                        max_size: int = 4) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A new, migrated database and a pool on it, closed afterwards: (URL, pool)."""
    url = await make_database(server, prefix)
    pool = await create_pool(url, min_size=1, max_size=max_size)
    try:
        yield url, pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
async def database_url(postgres: EmbeddedPostgres) -> str:
    return await make_database(postgres, "dsrflow")


@pytest.fixture(scope="session")
def mail_sink(home: Path) -> Iterator[MailSink]:
    sink = MailSink(home / "mail", free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def lifecycle_policy(home: Path) -> Path:
    """The default policy without processor systems: lifecycle tests exercise deadlines,
    verification and letters; the fan-out tests bring their own systems (tests/fanout_stack.py)."""
    content = only_systems(read_yaml(DEFAULT_POLICY), [])
    # Responses go out without compliance approval here; tests/test_approval.py covers the gate.
    content["approval_required_for"] = []
    path = home / "lifecycle-policy.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def settings(home: Path, database_url: str, mail_sink: MailSink, lifecycle_policy: Path) -> Settings:
    configure_logging(environment="development", level="info")
    return Settings(
        DSRFLOW_HOME=home,
        DSRFLOW_DATABASE_URL=database_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=mail_sink.port,
        DSRFLOW_PUBLIC_URL="http://127.0.0.1:8000",
        DSRFLOW_POLICY=lifecycle_policy,
        # Every test client calls from 127.0.0.1: tests/test_ratelimit.py sets its own limits.
        DSRFLOW_RATE_SUBMIT_PER_IP="10000/hour",
        DSRFLOW_RATE_VERIFY_PER_IP="10000/hour",
        DSRFLOW_RATE_VERIFY_PER_REQUEST="10000/hour",
        DSRFLOW_RATE_SIGNIN_PER_IP="10000/hour",
        DSRFLOW_RATE_BADTOKEN_PER_IP="10000/hour",
        DSRFLOW_RATE_CALLBACK_PER_IP="10000/hour",
        DSRFLOW_RATE_HEALTH_PER_IP="10000/hour",
        DSRFLOW_RATE_LOOKUP_PER_IP="10000/hour",
        DSRFLOW_RATE_LINK_PER_IP="10000/hour",
        # Portal resends too: a worker's modules together ask more new codes than 10 an hour.
        DSRFLOW_RATE_RESEND_PER_IP="10000/hour",
        DSRFLOW_MAX_UNVERIFIED_PER_NETWORK=1_000_000,
        # Workflows run outside Temporal's sandbox here, as in production: it cost a fifth of the CPU
        # of a test that runs them. The workflow tests (tests/workflow_stack.py) and the replays
        # (tests/test_replay.py) run in it; tests/test_workflow_determinism.py checks the source.
        DSRFLOW_WORKFLOW_SANDBOX=False,
        # Tests store requests without workflows: the sweep that would start them, scheduled by
        # every process worker, leaves them alone (tests/test_request_start_sweep.py tests it on its own databases).
        DSRFLOW_START_SWEEP_AFTER_MINUTES=10080,
        # A worker killed in a step (the crash-window tests) holds its requests this long before the
        # next worker takes them: waiting out Temporal's 10 s was about 7 s a kill, the suite's
        # largest idle time. Above any step's time on a loaded machine (local activities keep their
        # task alive themselves).
        DSRFLOW_WORKFLOW_TASK_TIMEOUT=4,
    )


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # 20, not 10: the apps built on it share it with the test and its worker.
    pool = await create_pool(database_url, min_size=1, max_size=20)
    register_session_pool(database_url, pool)  # for the apps the tests build (tests/pools.py)
    yield pool
    register_session_pool(database_url, None)
    await pool.close()


@pytest.fixture(scope="session")
async def dev_server(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        data_converter=build_data_converter(load_keyring(settings)),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


@contextlib.asynccontextmanager
async def time_skipping_env(data_converter: DataConverter) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of its own, knowing the search attributes the workflow publishes
    (the server refuses unknown ones); shut down afterwards."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=data_converter,
        # The SDK's default (5 s) is missed now and then while `make test`'s workers run stacks
        # of processes on two cores: the server then starts, but too late (seen in CI).
        test_server_startup_timeout=timedelta(seconds=30))
    try:
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{key.indexed_value_type.name}")
                               for key in SEARCH_ATTRIBUTES}))
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def time_skipping(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test: virtual time moved by one test never leaks into
    the next."""
    async with time_skipping_env(build_data_converter(load_keyring(settings))) as env:
        yield env


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def http(settings, pool, dev_server, task_queue):
    """The real app in-process (httpx over ASGI) with a worker on this test's task queue."""
    from tests.support import api_client  # support imports the app; keep conftest light to import
    from workers.dsr_worker import build_worker

    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue):
        async with api_client(settings, dev_server.client, task_queue) as client:
            yield client


@pytest.fixture
async def app_http(settings):
    """The real app in-process (httpx over ASGI) without the workflow engine: for routes and
    pages that need none (staff tokens, sign-in)."""
    from tests.apps import lent_app  # the app imports the product; keep conftest light to import
    from tests.policy_once import policy_of

    async with lent_app(settings, policy=policy_of(settings), pool=session_pool_on(settings.effective_database_url)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client


def raw_client(env: WorkflowEnvironment) -> Client:
    """A client on the same server without our data converter: sees what the server stores."""
    return Client(env.client.service_client, namespace=env.client.namespace)


# Chromium's headless shell (Debian's chromium-headless-shell: the same Blink and V8 without the
# desktop browser around them), as Playwright itself runs headless tests. The full browser in its
# headless mode took about 40 % more CPU for the same pages (25 s against 17 s of CPU on
# tests/test_browser_audit_queue.py, 35 s against 20 s on tests/test_browser_portal_access.py),
# a sixth of the suite's CPU spent in browsers (docs/testing.md#how-the-suite-is-kept-fast).
CHROMIUM = Path("/usr/bin/chromium-headless-shell")


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One Debian headless Chromium per pytest worker, launched by the first test that asks for `browser`."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The worker's Chromium, every context a test opened closed after it. A page left open goes on
    polling (a live region, a server gone): before this, the idle pages of earlier modules took
    about a tenth of the suite's CPU (docs/testing.md#how-the-suite-is-kept-fast)."""
    yield chromium
    for context in chromium.contexts:
        await context.close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3-speaking server (moto) on a loopback port, for the S3 back end of the package storage."""
    from tests.s3_support import moto_server

    with moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


os.environ.setdefault("DSRFLOW_ENV", "development")
# Every PostgreSQL server the tests start, in this process or in the stacks and benchmarks they
# run, writes its commits without flushing them to the disk (devstack/postgres.py `_durability`).
os.environ[NO_FSYNC_VARIABLE] = "1"
# Each pytest-xdist worker (and the stacks and processes it starts) picks the ports of its servers
# in a share of the range of its own (dsrflow/infra/ports.py), so two workers never pick one.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ[PORT_SHARE_VARIABLE] = f"{int(worker.removeprefix('gw'))}/{os.environ['PYTEST_XDIST_WORKER_COUNT']}"
