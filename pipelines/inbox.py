"""The deletion-request inbox: a directory of pending request files, processed in arrival order.

    inbox/pending/*.yaml  ->  inbox/done/      (promoted)
                          ->  inbox/rejected/  (refused: bad input or thresholds not met)
                          ->  stays pending    (failed for the platform's reasons; retried next run)

Each processed file gets a `<name>.outcome.json` beside it. Requests are run one after another, so
requests for the same model are serialized: the second starts from the model the first promoted.
Another source (a queue, a ticketing system) only has to yield request files to `process_inbox`.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger

from pipelines.flow import deletion_flow
from pipelines.settings import load_settings

DESTINATIONS = {"passed": "done", "rejected": "rejected"}


def inbox_root(path: str | None = None) -> Path:
    return Path(path) if path else load_settings().home / "inbox"


def pending_requests(root: Path) -> list[Path]:
    """Pending request files, oldest first (name breaks ties so the order is reproducible)."""
    pending = root / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    return sorted(pending.glob("*.y*ml"), key=lambda p: (p.stat().st_mtime_ns, p.name))


@flow(name="deletion-inbox")
def inbox_flow(inbox: str | None = None) -> list[dict]:
    """Process every pending request once; return their outcomes in processing order."""
    logger = get_run_logger()
    root = inbox_root(inbox)
    outcomes = []
    for request_path in pending_requests(root):
        outcome = deletion_flow(str(request_path))
        destination = DESTINATIONS.get(outcome["status"])
        if destination is None:
            logger.warning("request %s failed at %s; left pending for the next run", request_path.name, outcome["stage"])
        else:
            target = root / destination
            target.mkdir(parents=True, exist_ok=True)
            request_path.rename(target / request_path.name)
            (target / f"{request_path.stem}.outcome.json").write_text(json.dumps(outcome, indent=2))
        outcomes.append({"file": request_path.name, **outcome})
    return outcomes


def serve(inbox: str | None, cron: str) -> None:
    """Register a scheduled deployment of the inbox flow and serve it until stopped."""
    inbox_flow.serve(name="nightly-inbox", cron=cron, parameters={"inbox": str(inbox_root(inbox))})
