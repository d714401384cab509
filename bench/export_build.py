"""B4's building process: the access package for one plan, as the worker's activity builds it,
then its time and peak memory as one JSON line. Imports what a worker imports, nothing more, so
its peak RSS is the activity's plus a worker's baseline.

    python -m bench.export_build PLAN_JSON     (settings from the environment)
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.packages import PackageActivities
from dsrflow.infra.db import create_pool
from dsrflow.settings import load_settings
from schemas.workflow import Plan
from workers.dsr_worker import activity_context


async def build_once(plan_json: str) -> dict[str, Any]:
    settings = load_settings()
    pool = await create_pool(settings.effective_database_url, max_size=2)
    plan = Plan.model_validate_json(plan_json)
    start = time.perf_counter()
    info = await ActivityEnvironment().run(PackageActivities(activity_context(settings, pool)).build_package, plan)
    seconds = time.perf_counter() - start
    await pool.close()
    return {"seconds": round(seconds, 2), "records": info.records, "size_bytes": info.size_bytes,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(build_once(sys.argv[1]))), flush=True)
    os._exit(0)  # sdk-python issue 300: no crash at interpreter exit
