"""Wall time of the demo request from a cold process: `erasure request run`, start to exit, stage by stage.

    python -m bench.cold_request                          # 3 cold runs against a scratch copy of $ERASURE_HOME
    python -m bench.cold_request --runs 3 --out bench/results/cold_request.md

Needs the embedded state of `make demo` (or `make model`). Each run is a fresh process running the `erasure`
command's own entry point (`pipelines.cli.app`, `request run`) on a copy of requests/examples/forget-haze.yaml
under a fresh request id, with thresholds that accept any result so every stage runs (register, export,
promote). The runs use one scratch copy of $ERASURE_HOME (MLflow store, Prefect home, DVC remote, keys,
ledger; the MLflow store's absolute paths rewritten to the copy), made before the first run, so the demo's
own registry and audit trail are left as they were; later runs start from the version the run before
promoted, as requests do.

Stage boundaries are marks the child process appends to a file as it goes (a restarted process keeps
appending): process start, the numerics restart (`unlearning/numerics.py` re-executes the command in the
reproducible CPU numerics), importing the flow, Prefect's ephemeral server and flow run start, each stage
of the flow as it is entered (`pipelines.operations.faults.enter_stage`), and the process exit after
Prefect stopped its server. The machine's load average is recorded with each run: it is shared.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_REQUEST = PROJECT_ROOT / "requests" / "examples" / "forget-haze.yaml"
ANY_RESULT = {"forget_max_gain_db": 30.0, "retain_max_drop_db": 30.0}
MARKS_ENV = "ERASURE_BENCH_MARKS"


def mark(label: str) -> None:
    """Append (label, wall clock) to the marks file: the child's own clock, read by the parent."""
    with open(os.environ[MARKS_ENV], "a") as marks:
        marks.write(json.dumps([label, time.time(), bool(os.environ.get("ERASURE_NUMERICS_RESTARTED"))]) + "\n")


def child(request_file: str) -> None:
    """Run `erasure request run REQUEST_FILE` as the console script does, marking where the time goes."""
    mark("process started")
    atexit.register(mark, "exit")  # registered first, so it runs last: after Prefect stops its server
    import pipelines.cli
    from pipelines.cli import common, request

    mark("cli imported")
    enter_numerics, run_flow = request.enter_numerics, request._run_deletion_flow

    def marked_numerics(mode: str) -> None:
        mark("replay check")
        enter_numerics(mode)  # may re-execute this command (then the marks go on from the new process)
        mark("numerics entered")

    def marked_flow(request_file):
        from pipelines.flow import deletion

        mark("flow imported")
        enter_stage, process_request = deletion.enter_stage, deletion._process_request

        def marked_stage(stage: str) -> str:
            mark(stage)
            return enter_stage(stage)

        def marked_body(*args, **kwargs):
            mark("flow run started (Prefect)")
            try:
                return process_request(*args, **kwargs)
            finally:
                mark("flow body returned")

        deletion.enter_stage, deletion._process_request = marked_stage, marked_body
        try:
            return run_flow(request_file)
        finally:
            mark("flow returned (Prefect)")

    request.enter_numerics, request._run_deletion_flow = marked_numerics, marked_flow
    if hasattr(request, "start_prefect_server"):  # the CLI starts Prefect's server while it imports the flow
        start_prefect_server = request.start_prefect_server

        def marked_start():
            wait = start_prefect_server()
            mark("prefect server starting")

            def marked_wait():
                mark("flow tools imported")
                wait()
                mark("prefect server up")

            return marked_wait

        request.start_prefect_server = marked_start
    common.console.quiet = True  # the verdict and its reasons: the audit record has them
    pipelines.cli.app(["request", "run", request_file])


def scratch_home(source: Path, destination: Path) -> Path:
    """A copy of the embedded state whose MLflow store points at the copy's artifacts, not the source's."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*.lock"))
    store = sqlite3.connect(destination / "mlflow.db")
    with store:
        for (table,) in store.execute("select name from sqlite_master where type = 'table'").fetchall():
            for column in [row[1] for row in store.execute(f"pragma table_info({table})")]:
                store.execute(
                    f"update {table} set {column} = replace({column}, ?, ?) where typeof({column}) = 'text'"
                    f" and instr({column}, ?) > 0", (str(source), str(destination), str(source)))
    store.close()
    return destination


def cold_run(home: Path, scratch: Path, n: int) -> dict:
    """One `erasure request run` in a fresh process: wall seconds, the marks' stages, the outcome."""
    import yaml

    request_id = f"bench-cold-{uuid.uuid4().hex[:8]}-{n}"
    request = {**yaml.safe_load(DEMO_REQUEST.read_text()), "request_id": request_id, "thresholds": ANY_RESULT}
    path = scratch / f"{request_id}.yaml"
    path.write_text(yaml.safe_dump(request))
    marks_file = scratch / f"{request_id}.marks"
    environment = {**os.environ, "ERASURE_HOME": str(home), MARKS_ENV: str(marks_file)}
    environment.pop("ERASURE_NUMERICS_RESTARTED", None)
    load_before = os.getloadavg()
    started = time.time()
    finished_process = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(path)],
                                      env=environment, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    wall = time.time() - started
    marks = [json.loads(line) for line in marks_file.read_text().splitlines()]
    stages: dict[str, float] = {"python start (interpreter, site)": marks[0][1] - started}
    for (label, at, restarted), (following, until, _) in itertools.pairwise(marks):
        name = (_STAGE_NAMES.get((label, following)) or _STAGE_NAMES.get((label, restarted))
                or _STAGE_NAMES.get((label, False)) or label)
        stages[name] = stages.get(name, 0.0) + until - at
    stages["process exit"] = started + wall - marks[-1][1]
    record_path = home / "audit" / f"{request_id}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    return {
        "request_id": request_id, "wall": wall, "stages": stages, "returncode": finished_process.returncode,
        "status": record.get("status", "no record"), "unlearning_seconds": record.get("unlearning", {}).get("seconds"),
        "load_before": load_before, "load_after": os.getloadavg(),
        "stderr_tail": finished_process.stderr[-2000:] if finished_process.returncode else "",
    }


# What the time from one mark to the next was spent on, by (mark, the next mark) or (mark, made in the restarted process).
_STAGE_NAMES = {
    ("process started", False): "import the CLI",
    ("cli imported", False): "replay check (local audit record)",
    ("replay check", False): "numerics: import torch, re-execute the command, python start",
    ("process started", True): "restarted: import the CLI",
    ("cli imported", True): "restarted: replay check",
    ("replay check", True): "restarted: import torch, enter the numerics",
    ("numerics entered", False): "import the flow (Prefect, MLflow, torch, ...)",
    ("numerics entered", "prefect server starting"): "import Prefect and its server module",
    ("prefect server starting", False): "import the flow and its tools, Prefect's server starting beside",
    ("flow tools imported", False): "wait for Prefect's server",
    ("prefect server up", False): "import the flow (rest)",
    ("flow imported", False): "Prefect: ephemeral server, flow run start, request lock",
    ("flow run started (Prefect)", False): "record lookup, MLflow audit run",
    ("flow body returned", False): "Prefect: finishing the flow run",
    ("flow returned (Prefect)", False): "print the outcome, exit handlers (Prefect stops its server)",
}


def import_profile(top: int) -> tuple[float, list[tuple[str, float]]]:
    """`erasure --help`'s wall seconds, and its `python -X importtime` top importers (cumulative seconds)."""
    started = time.time()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, check=True, cwd=PROJECT_ROOT)
    wall = time.time() - started
    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipelines.cli", "--help"],
                           capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    rows = []
    for line in timed.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(3)) <= 3:  # top-level imports and their direct children
            rows.append((match.group(3)[1:] + match.group(4), int(match.group(2)) / 1e6))
    return wall, sorted(rows, key=lambda row: -row[1])[:top]


def report(runs: list[dict], help_wall: float, importers: list[tuple[str, float]], home: Path, stored_graphs: int) -> str:
    walls = [run["wall"] for run in runs]
    names = list(dict.fromkeys(name for run in runs for name in run["stages"]))
    header = ["stage", *(f"run {n + 1}" for n in range(len(runs)))]
    lines = [
        "# Cold CLI: the demo request from a fresh process",
        "",
        (f"`python -m bench.cold_request --runs {len(runs)}` on {platform.machine()} "
         f"({os.cpu_count()} CPUs), python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"against a scratch copy of `{home}` (the state of `make demo`; ONNX graphs stored there: {stored_graphs}). "
         "Each run is `erasure request run` on the demo request (`requests/examples/forget-haze.yaml`, gradient "
         "ascent, 200 steps) under a fresh request id, thresholds accepting any result so every stage runs, in a new "
         "process (its own Prefect ephemeral server)."),
        "",
        f"**Wall time, start to exit: median {statistics.median(walls):.1f} s, min {min(walls):.1f} s, "
        f"max {max(walls):.1f} s** ({len(runs)} runs); of which unlearning "
        + ", ".join(f"{run['unlearning_seconds']:.1f} s" if run["unlearning_seconds"] else "-" for run in runs)
        + " (the method's own loop, from the audit record).",
        "",
        "| | " + " | ".join(header[1:]) + " |",
        "|---|" + "---|" * len(runs),
        "| wall time | " + " | ".join(f"{run['wall']:.1f} s" for run in runs) + " |",
        "| outcome | " + " | ".join(f"{run['status']} (exit {run['returncode']})" for run in runs) + " |",
        "| load average before (1/5/15 min) | " + " | ".join("/".join(f"{x:.1f}" for x in run["load_before"]) for run in runs) + " |",
        "| load average after | " + " | ".join("/".join(f"{x:.1f}" for x in run["load_after"]) for run in runs) + " |",
        "",
        "Where the time went, in order (seconds from one mark to the next, as the child process saw them):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{run['stages'].get(name, 0.0):.2f}" for run in runs) + " |")
    lines.append("| **wall time** | " + " | ".join(f"**{run['wall']:.2f}**" for run in runs) + " |")
    lines.append("| overhead (all but unlearn) | " + " | ".join(
        f"{run['wall'] - run['stages'].get('unlearn', 0.0):.2f}" for run in runs) + " |")
    lines += [
        "",
        (f"`erasure --help`: {help_wall:.2f} s wall. Its top importers (`python -X importtime -m pipelines.cli --help`, "
         "cumulative, top-level imports and their direct children):"),
        "",
        "| module | seconds |",
        "|---|---|",
        *(f"| {name} | {seconds:.3f} |" for name, seconds in importers),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="cold runs, one after the other")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("ERASURE_HOME", PROJECT_ROOT / ".erasure")),
                        help="the embedded state to copy (default: $ERASURE_HOME or .erasure)")
    parser.add_argument("--out", type=Path, help="write the report as markdown here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if not (args.home / "mlflow.db").exists():
        sys.exit(f"no embedded state at {args.home}: run `make demo` (or `make model`) first")
    help_wall, importers = import_profile(top=15)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        home = scratch_home(args.home.resolve(), Path(scratch) / "home")
        for n in range(args.runs):
            run = cold_run(home, Path(scratch), n)
            runs.append(run)
            print(f"run {n + 1}: {run['wall']:.1f} s, {run['status']}, load {run['load_before'][0]:.1f}", flush=True)
            if run["stderr_tail"]:
                print(run["stderr_tail"], file=sys.stderr)
    text = report(runs, help_wall, importers, args.home, len(list((args.home / "onnx-graphs").glob("*.onnx"))))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
