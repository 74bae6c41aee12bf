"""Locks that serialize the deletion flow: one run per request id, one request at a time per model.

A second run of a request id that is already running waits, then replays the recorded outcome. Requests
for the same model hold its lock from "pull model" until their audit record is chained, so each starts
from the version the one before it promoted and the model's audit chain follows the same order.

The locks are `filelock` locks (flock) under $ERASURE_HOME/locks: the kernel drops them when their holder
dies, even by SIGKILL, so a crashed run never leaves a model locked. They serialize flows on one
machine; a deployment with workers on several machines would hold a Prefect global concurrency limit of
1 per model over the same stages instead (`prefect.concurrency.sync.concurrency(f"model-{name}")`, limit
made once with `prefect gcl create model-<name> --limit 1`), which needs a Prefect server to keep it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from pipelines.adapters.settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class LockTimeoutError(TimeoutError):
    """Another run held the lock for longer than ERASURE_LOCK_TIMEOUT_SECONDS: a platform failure, retry later."""


def lock_path(settings: Settings, kind: str, name: str) -> Path:
    """`locks/<kind>-<name>.lock`; a name with unsafe characters gets a hash suffix so names never collide."""
    safe = _UNSAFE.sub("_", name)[:80]
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return settings.home / "locks" / f"{kind}-{safe}.lock"


@contextmanager
def _held(settings: Settings, kind: str, name: str) -> Iterator[None]:
    path = lock_path(settings, kind, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(path, timeout=settings.lock_timeout_seconds):
            yield
    except Timeout as error:
        raise LockTimeoutError(
            f"{kind} {name!r} is busy: another run held {path} for over {settings.lock_timeout_seconds:g} s"
        ) from error


def request_lock(settings: Settings, request_id: str):
    """Held for a whole run of `request_id`."""
    return _held(settings, "request", request_id)


def model_lock(settings: Settings, model_name: str):
    """Held by a request for `model_name` from "pull model" until its audit record is written."""
    return _held(settings, "model", model_name)


def data_repo_lock(settings: Settings, repo: Path):
    """Held while a data erasure or purge changes the data repository, its cache or remotes: two models'
    requests may share one data repository."""
    return _held(settings, "data-repo", str(Path(repo).resolve()))
