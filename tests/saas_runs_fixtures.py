"""The module-scoped Mailchimp stand-in behind its rate limit, and the stack whose worker reaches it
in half-second slices: for the test modules that run whole requests against it (each imports both
fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from devstack.saas.mailchimp import create_mailchimp_app
from tests.fanout_stack import fanout_stack, served
from tests.saas_runs_support import KEY, SERVICE_LIMIT, newsletter, rate_limited


@pytest.fixture(scope="module", name="newsletter_service")
async def newsletter_service_fixture() -> AsyncIterator[Any]:
    app = create_mailchimp_app(KEY)
    rate_limited(app, SERVICE_LIMIT)
    async with served(app) as url:
        with pytest.MonkeyPatch.context() as env:  # read by the worker processes too
            env.setenv("MAILCHIMP_API_BASE", url)
            env.setenv("MAILCHIMP_API_KEY", KEY)
            yield app


@pytest.fixture(scope="module", name="stack")
async def saas_stack_fixture(newsletter_service: Any, postgres: Any, settings: Any, dev_server: Any,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    slices = settings.model_copy(update={"http_run_slice_seconds": 0.5})
    async with fanout_stack(postgres, slices, dev_server.client, tmp_path_factory.mktemp("saas-runs"),
                            extra_systems={"newsletter": newsletter()}) as stack:
        yield stack
