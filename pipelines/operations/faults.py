"""Fault injection, a test and chaos hook: ERASURE_FAULT_INJECT=<stage> SIGKILLs the process entering that stage.

It stands in for the OOM killer, a lost node or a deploy that kills the worker mid-request, so tests can
check that running the request again recovers (tests/pipeline/test_recovery.py). Stage names are the
deletion flow's: load request, pull model, pull data, validate, unlearn, verify, register, export,
promote, audit. Unset (always, outside tests and chaos drills) it does nothing.
"""

from __future__ import annotations

import os
import signal

FAULT_INJECT_ENV = "ERASURE_FAULT_INJECT"


def enter_stage(stage: str) -> str:
    """Return `stage`, after SIGKILLing this process first if ERASURE_FAULT_INJECT names it."""
    if os.environ.get(FAULT_INJECT_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    return stage
