"""Where a deletion request's wall time goes, stage by stage, cold (first request in a process) and warm.

    python -m bench.flow_overhead                      # against the current $ERASURE_HOME (after `make demo`)
    python -m bench.flow_overhead --requests 3 --out bench/results/flow_overhead.md

Runs `deletion_flow` on copies of the demo request (requests/examples/forget-haze.yaml) with fresh request
ids, one after the other in one process: the first pays Prefect's server start and first-use costs, the
later ones are what a warm worker (`erasure serve`, a Prefect worker) pays. Thresholds accept any result
so every stage runs (register, export, promote). Stage boundaries are read where the flow enters each
stage (`pipelines.operations.faults.enter_stage`) and where its body starts and ends (the rest is Prefect's own
bookkeeping of the flow run); "overhead" is everything but the unlearn stage. It promotes new
versions of the demo model: run it in a scratch clone.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import uuid
from pathlib import Path

import yaml

DEMO_REQUEST = Path(__file__).resolve().parents[1] / "requests" / "examples" / "forget-haze.yaml"
ANY_RESULT = {"forget_max_gain_db": 30.0, "retain_max_drop_db": 30.0}


def timed_request(path: Path) -> tuple[float, dict[str, float], dict]:
    """(wall seconds, seconds per stage, outcome) of one deletion_flow call."""
    from pipelines.flow import deletion as flow

    marks: list[tuple[str, float]] = []
    enter_stage, process_request = flow.enter_stage, flow._process_request

    def mark(stage: str) -> str:
        marks.append((stage, time.perf_counter()))
        return enter_stage(stage)

    def body(*args, **kwargs):
        marks.append(("record lookup, audit run", time.perf_counter()))
        try:
            return process_request(*args, **kwargs)
        finally:
            marks.append(("Prefect: finishing the flow run", time.perf_counter()))

    flow.enter_stage, flow._process_request = mark, body
    started = time.perf_counter()
    try:
        outcome = flow.deletion_flow(str(path))
    finally:
        flow.enter_stage, flow._process_request = enter_stage, process_request
    finished = time.perf_counter()
    stages = {"Prefect: starting the flow run, request lock": (marks[0][1] if marks else finished) - started}
    for (stage, at), (_, until) in zip(marks, [*marks[1:], ("end", finished)]):
        stages[stage] = stages.get(stage, 0.0) + until - at
    return finished - started, stages, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2, help="requests run one after the other in this process")
    parser.add_argument("--out", type=Path, help="write the table as markdown here")
    args = parser.parse_args()

    imports_started = time.perf_counter()
    import pipelines.flow.deletion  # noqa: F401 - timed: what a CLI process pays before the flow starts

    import_seconds = time.perf_counter() - imports_started
    request = yaml.safe_load(DEMO_REQUEST.read_text())
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in range(args.requests):
            request_id = f"bench-overhead-{uuid.uuid4().hex[:8]}-{n}"
            path = Path(scratch) / f"{request_id}.yaml"
            path.write_text(yaml.safe_dump({**request, "request_id": request_id, "thresholds": ANY_RESULT}))
            wall, stages, outcome = timed_request(path)
            runs.append((wall, stages, outcome))
            print(f"request {n + 1}: {wall:.1f} s, {outcome['status']}", flush=True)

    names = list(dict.fromkeys(name for _, stages, _ in runs for name in stages))
    header = ["stage", *(("cold" if n == 0 else f"warm {n}") for n in range(len(runs)))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{stages.get(name, 0.0):.2f} s" for _, stages, _ in runs) + " |")
    lines.append("| **wall time of the flow** | " + " | ".join(f"**{wall:.2f} s**" for wall, _, _ in runs) + " |")
    lines.append("| overhead (all but unlearn) | " + " | ".join(
        f"{wall - stages.get('unlearn', 0.0):.2f} s ({(wall - stages.get('unlearn', 0.0)) / wall:.0%})" for wall, stages, _ in runs
    ) + " |")
    table = "\n".join(lines)
    summary = (
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}; "
        f"importing pipelines.flow.deletion: {import_seconds:.1f} s (not in the table)\n"
    )
    print(summary + table)
    if args.out:
        args.out.write_text(summary + "\n" + table + "\n")


if __name__ == "__main__":
    main()
