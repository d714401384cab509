"""The worker for bench/skeleton.py's workflows, a process of its own as the request worker is.

    python -m bench.skeleton_worker      (the stack's settings come from the environment)
"""

from __future__ import annotations

import asyncio
import os
import signal

from temporalio.worker import Worker

from bench.skeleton import ACTIVITIES, TASK_QUEUE, SkeletonWorkflow
from dsrflow.infra import event_loop
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import Settings, load_settings
from workers.dsr_worker import worker_tuning


async def main(settings: Settings) -> None:
    client = await connect_client(settings)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    # The request worker's settings, so the two differ in the work only.
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[SkeletonWorkflow],
                      activities=ACTIVITIES, **worker_tuning(settings)):
        print("skeleton worker started", flush=True)
        await stop.wait()


if __name__ == "__main__":
    settings = load_settings()
    event_loop.run(settings, main(settings))  # the request worker's loop too
    os._exit(0)  # sdk-python issue 300: no crash at interpreter exit
