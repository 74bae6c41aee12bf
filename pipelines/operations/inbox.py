"""The deletion-request inbox: a directory of pending request files, processed in arrival order.

    inbox/pending/*.yaml  ->  inbox/done/      (promoted)
                          ->  inbox/rejected/  (refused: bad input or thresholds not met)
                          ->  stays pending    (failed for the platform's reasons; retried next run)

Each processed file gets a `<name>.outcome.json` beside it. Pending requests for the same model and
method are coalesced into one unlearning run (pipelines/operations/coalesce.py); a request that does not fit its
group, and every other request, runs alone. Requests for the same model are serialized: each starts from
the model the one before it promoted. Another source (a queue, a ticketing system) only has to yield
request files to `inbox_flow`.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger

from pipelines.adapters.settings import load_settings
from pipelines.flow.deletion import deletion_flow
from pipelines.operations.coalesce import coalesced_flow, plan

DESTINATIONS = {"passed": "done", "rejected": "rejected"}


def inbox_root(path: str | None = None) -> Path:
    return Path(path) if path else load_settings().home / "inbox"


def pending_requests(root: Path) -> list[Path]:
    """Pending request files, oldest first (name breaks ties so the order is reproducible)."""
    pending = root / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    return sorted(pending.glob("*.y*ml"), key=lambda p: (p.stat().st_mtime_ns, p.name))


@flow(name="deletion-inbox")
def inbox_flow(inbox: str | None = None, coalesce: bool = True) -> list[dict]:
    """Process every pending request once; return their outcomes in processing order."""
    root = inbox_root(inbox)
    pending = pending_requests(root)
    outcomes = []
    for group in plan(pending) if coalesce else [[path] for path in pending]:
        alone = [str(path) for path in group]
        if len(group) > 1:
            decided, alone = coalesced_flow(alone)
            outcomes += [_file_outcome(root, Path(file), outcome) for file, outcome in decided]
        for request_path in alone:
            outcomes.append(_file_outcome(root, Path(request_path), deletion_flow(request_path)))
    return outcomes


def _file_outcome(root: Path, request_path: Path, outcome: dict) -> dict:
    """Move a decided request to done/ or rejected/ with its outcome beside it; a failed one stays pending."""
    destination = DESTINATIONS.get(outcome["status"])
    if destination is None:
        get_run_logger().warning("request %s failed at %s; left pending for the next run", request_path.name, outcome["stage"])
    else:
        target = root / destination
        target.mkdir(parents=True, exist_ok=True)
        request_path.rename(target / request_path.name)
        (target / f"{request_path.stem}.outcome.json").write_text(json.dumps(outcome, indent=2))
    return {**outcome, "file": request_path.name}


def serve(inbox: str | None, cron: str) -> None:
    """Register a scheduled deployment of the inbox flow and serve it until stopped."""
    inbox_flow.serve(name="nightly-inbox", cron=cron, parameters={"inbox": str(inbox_root(inbox))})
