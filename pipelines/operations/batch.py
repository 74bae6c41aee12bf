"""Many deletion requests at once: one deletion flow per model, the models in parallel on a Dask cluster.

Requests for the same model run one after another (each starts from the alias the previous one moved);
different models run side by side. Without an address, a local Dask cluster of worker processes is
started for the batch; with one (`tcp://scheduler:8786`), the batch runs on that cluster.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from pipelines.flow.request import RequestError, load_request


def group_by_model(request_files: list[str]) -> list[list[str]]:
    """Request files grouped by the model they name, in the given order; an unreadable request stands alone."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path in request_files:
        try:
            key = load_request(Path(path)).model.name
        except RequestError:
            key = f"unreadable:{path}"  # the flow itself rejects it and writes its audit record
        groups[key].append(path)
    return list(groups.values())


@task(name="deletion requests of one model", cache_policy=NO_CACHE)
def process_model_requests(request_files: list[str]) -> list[dict]:
    from pipelines.flow.deletion import deletion_flow

    outcomes = []
    for request_file in request_files:
        started = time.time()
        outcome = deletion_flow(request_file)
        outcomes.append({**outcome, "started": started, "finished": time.time(), "worker_pid": os.getpid()})
    return outcomes


@flow(name="deletion-batch")
def deletion_batch(request_files: list[str]) -> list[dict]:
    """Process every request; returns one outcome per request (the deletion flow's, plus timing)."""
    futures = [process_model_requests.submit(group) for group in group_by_model(request_files)]
    return [outcome for future in futures for outcome in future.result()]


def dask_task_runner(address: str | None = None, workers: int = 2) -> DaskTaskRunner:
    if address:
        return DaskTaskRunner(address=address)
    # One thread per worker process: torch already uses every core it is given, and the GIL would
    # serialise the Python parts of concurrent flows anyway.
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None},
    )


def run_batch(request_files: list[str], address: str | None = None, workers: int = 2) -> list[dict]:
    return deletion_batch.with_options(task_runner=dask_task_runner(address, workers))(request_files)
