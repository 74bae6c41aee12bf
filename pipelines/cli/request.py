"""`erasure request`, `erasure inbox` and `erasure serve`: run deletion requests through the Prefect flow."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

import typer
from rich.table import Table

from pipelines.adapters.settings import load_settings
from pipelines.cli.common import console, enter_numerics, sparing_the_gc, start_prefect_server

request_app = typer.Typer(help="Run deletion requests through the Prefect flow.", no_args_is_help=True)
inbox_app = typer.Typer(help="The inbox of pending deletion requests.", no_args_is_help=True)


def _refusal_without_traceback(record: logging.LogRecord) -> bool:
    """Logging filter: Prefect logs a failed task or flow with its traceback at ERROR. A refusal (an auth
    refusal, or a request the flow rejects: INPUT_ERRORS) is not the platform's fault: one line, no
    traceback, at WARNING. Tracebacks stay for everything else (`failed` outcomes)."""
    from pipelines.adapters.registry import access_error
    from pipelines.flow.deletion import INPUT_ERRORS

    error = record.exc_info[1] if record.exc_info else None
    if error is None:
        return True
    if isinstance(error, PermissionError) or access_error(error, "") is not None:
        record.exc_info, record.exc_text = None, None
    elif isinstance(error, INPUT_ERRORS):
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


@request_app.command("run")
def request_run(request_file: Path = typer.Argument(..., help="deletion request YAML")) -> None:
    """Process one deletion request. Exits 0 only when the unlearned model was verified and promoted."""
    from pipelines.operations.replay import decided_outcome

    # At most once: a request already decided for this very file is answered from its local audit record,
    # before Prefect, MLflow, DVC or GX are imported (seconds instead of ~20). Anything else runs the flow.
    outcome = decided_outcome(load_settings(), request_file)
    if outcome is None:
        with sparing_the_gc() as imported:
            enter_numerics(load_settings().numerics)
            prefect_server_up = start_prefect_server()
            _import_flow_tools()
            imported()
            prefect_server_up()
            outcome = _run_deletion_flow(request_file)
    _print_outcome(outcome)
    raise typer.Exit(0 if outcome["status"] == "passed" else 1)


# What a flow run imports on its way (validate: GX; pull data: DVC; register: MLflow's pyfunc and the model
# signing; export: ONNX, onnxruntime), imported up front while Prefect's server starts: time spent waiting otherwise.
FLOW_TOOLS = ("pipelines.flow.deletion", "great_expectations", "great_expectations.expectations", "dvc.api",
              "mlflow.pyfunc", "model_signing.hashing", "model_signing.signing", "onnx", "onnxruntime")


def _import_flow_tools() -> None:
    from unlearning import plugins

    for module in FLOW_TOOLS:
        try:
            importlib.import_module(module)
        except ImportError:  # a head start only: the stage that needs it raises its own error
            pass
    # The installed kinds, architectures and methods (loaded once per process, by the request's first check).
    for group in (plugins.KIND_GROUP, plugins.ARCHITECTURE_GROUP, plugins.METHOD_GROUP):
        plugins.load_group(group)


def _run_deletion_flow(request_file: Path) -> dict:
    from pipelines.adapters.registry import access_error
    from pipelines.flow.deletion import deletion_flow

    for name in ("prefect.engine", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_refusal_without_traceback)
    try:
        return deletion_flow(str(request_file))
    except Exception as error:
        # Auth refusals before the flow's first stage (creating its audit run) get one clear line.
        refusal = error if isinstance(error, PermissionError) else access_error(error, "start the deletion flow")
        if refusal is None:
            raise
        console.print(f"[bold red]refused:[/] {refusal}")
        raise typer.Exit(3) from None


def _print_outcome(outcome: dict) -> None:
    colour = {"passed": "green", "rejected": "yellow"}.get(outcome["status"], "red")
    replayed = " (already processed: recorded outcome)" if outcome["replayed"] else ""
    console.print(f"[bold {colour}]verdict: {outcome['status']}[/] request {outcome['request_id']}{replayed}")
    for reason in outcome["reasons"]:
        console.print(f"  - {reason}")
    if outcome["error"]:
        console.print(f"  stage '{outcome['stage']}': {outcome['error']}")
    if outcome["version_after"]:
        console.print(
            f"promoted {outcome['model']} version {outcome['version_before']} -> {outcome['version_after']}"
        )
    console.print(f"audit record: {outcome['audit_record']} (MLflow run {outcome['mlflow_run_id']})")


@request_app.command("batch")
def request_batch(
    request_files: list[Path] = typer.Argument(..., help="deletion request YAMLs"),
    dask_address: str = typer.Option(None, help="a running Dask scheduler (tcp://host:8786); default: a local cluster"),
    workers: int = typer.Option(2, help="worker processes of the local Dask cluster"),
    as_json: bool = typer.Option(False, "--json", help="print the outcomes as JSON"),
) -> None:
    """Process many requests: models in parallel on Dask, each model's requests in order. Exits 0 iff all passed."""
    from pipelines.operations.batch import run_batch

    outcomes = run_batch([str(path) for path in request_files], address=dask_address, workers=workers)
    if as_json:
        print(json.dumps(outcomes))
    else:
        table = Table("request", "model", "status", "before", "after", "seconds")
        for outcome in outcomes:
            table.add_row(outcome["request_id"], outcome["model"], outcome["status"], outcome["version_before"],
                          outcome["version_after"], f"{outcome['finished'] - outcome['started']:.1f}")
        console.print(table)
    raise typer.Exit(0 if all(outcome["status"] == "passed" for outcome in outcomes) else 1)


@inbox_app.command("run")
def inbox_run(inbox: str = typer.Option(None, help="inbox directory (default: $ERASURE_HOME/inbox)")) -> None:
    """Process every pending request once, oldest first. Exits 1 if any request was not promoted."""
    from pipelines.operations.inbox import inbox_flow

    enter_numerics(load_settings().numerics)
    for name in ("prefect.engine", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_refusal_without_traceback)
    outcomes = inbox_flow(inbox)
    table = Table("file", "request", "status", "stage", "version after")
    for outcome in outcomes:
        table.add_row(
            outcome["file"], outcome["request_id"], outcome["status"], outcome["stage"] or "", outcome["version_after"] or ""
        )
    console.print(table if outcomes else "inbox is empty")
    raise typer.Exit(0 if all(o["status"] == "passed" for o in outcomes) else 1)



def serve(
    inbox: str = typer.Option(None, help="inbox directory (default: $ERASURE_HOME/inbox)"),
    cron: str = typer.Option("0 3 * * *", help="schedule of the inbox flow (default: nightly at 03:00)"),
) -> None:
    """Register the scheduled inbox deployment with Prefect and serve it until interrupted."""
    from pipelines.operations.inbox import serve as serve_inbox

    serve_inbox(inbox, cron)
