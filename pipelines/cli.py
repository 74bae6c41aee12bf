"""The `erasure` command: build data, train and register the base model, run and review deletion requests."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pipelines.settings import PROJECT_ROOT, load_settings

app = typer.Typer(help="Erasure: verified, audited machine unlearning for deletion requests.", no_args_is_help=True)
data_app = typer.Typer(help="The deterministic demo data set (tracked by data.dvc).", no_args_is_help=True)
model_app = typer.Typer(help="The base model: train (DVC stage) and register in MLflow.", no_args_is_help=True)
request_app = typer.Typer(help="Run deletion requests through the Prefect flow.", no_args_is_help=True)
audit_app = typer.Typer(help="Review the audit trail.", no_args_is_help=True)
for sub_app, name in ((data_app, "data"), (model_app, "model"), (request_app, "request"), (audit_app, "audit")):
    app.add_typer(sub_app, name=name)

console = Console()
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


@data_app.command("build")
def data_build(
    out: Path = typer.Option(PROJECT_ROOT / "data", help="data root to write"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml with a `data` section"),
) -> None:
    """Synthesise the restoration sets; the same params always give the same bytes."""
    from pipelines.base_model import load_params
    from unlearning.data.restoration import build_restoration_sets, write_sets

    files = build_restoration_sets(load_params(params).data_config)
    write_sets(files, out)
    console.print(f"wrote {len(files)} sets under {out}")


@model_app.command("train")
def model_train(
    data: Path = typer.Option(PROJECT_ROOT / "data", help="data root"),
    out: Path = typer.Option(PROJECT_ROOT / "models" / "restorer", help="output directory"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml"),
) -> None:
    """Train the all-in-one restorer on noise, rain and haze (the DVC `train` stage)."""
    from pipelines.base_model import load_params, train_base_model

    metrics = train_base_model(load_params(params), data, out)
    console.print_json(json.dumps(metrics))


@model_app.command("register")
def model_register(
    model_dir: Path = typer.Option(PROJECT_ROOT / "models" / "restorer", help="trained model directory"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml (model name and alias)"),
) -> None:
    """Register the trained base model in MLflow and set its alias, if not done already (idempotent)."""
    from pipelines.base_model import load_params, register_base_model

    model = load_params(params).model
    version = register_base_model(load_settings(), model_dir, model.name, model.alias)
    console.print(f"{model.name}@{model.alias} -> version {version}")


def _refusal_without_traceback(record: logging.LogRecord) -> bool:
    """Logging filter: Prefect logs a failed flow with its traceback; an auth refusal needs one line."""
    from pipelines.registry import access_error

    error = record.exc_info[1] if record.exc_info else None
    if error is not None and (isinstance(error, PermissionError) or access_error(error, "") is not None):
        record.exc_info, record.exc_text = None, None
    return True


@request_app.command("run")
def request_run(request_file: Path = typer.Argument(..., help="deletion request YAML")) -> None:
    """Process one deletion request. Exits 0 only when the unlearned model was verified and promoted."""
    from pipelines.flow import deletion_flow
    from pipelines.registry import access_error

    for name in ("prefect.engine", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_refusal_without_traceback)
    try:
        outcome = deletion_flow(str(request_file))
    except Exception as error:
        # Auth refusals before the flow's first stage (creating its audit run) get one clear line.
        refusal = error if isinstance(error, PermissionError) else access_error(error, "start the deletion flow")
        if refusal is None:
            raise
        console.print(f"[bold red]refused:[/] {refusal}")
        raise typer.Exit(3) from None
    colour = {"passed": "green", "rejected": "yellow"}.get(outcome["status"], "red")
    console.print(f"[bold {colour}]verdict: {outcome['status']}[/] request {outcome['request_id']}")
    for reason in outcome["reasons"]:
        console.print(f"  - {reason}")
    if outcome["error"]:
        console.print(f"  stage '{outcome['stage']}': {outcome['error']}")
    if outcome["version_after"]:
        console.print(
            f"promoted {outcome['model']} version {outcome['version_before']} -> {outcome['version_after']}"
        )
    console.print(f"audit record: {outcome['audit_record']} (MLflow run {outcome['mlflow_run_id']})")
    raise typer.Exit(0 if outcome["status"] == "passed" else 1)


@audit_app.command("list")
def audit_list() -> None:
    """One line per audited request, newest first."""
    from pipelines.audit import list_records

    table = Table("request", "status", "model", "before", "after", "started (UTC)")
    for row in list_records(load_settings()):
        table.add_row(
            row["request_id"], row["status"], row["model"], row["version_before"], row["version_after"], row["started"]
        )
    console.print(table)


@audit_app.command("show")
def audit_show(request_id: str = typer.Argument(..., help="request id")) -> None:
    """The whole audit record of one request, as JSON."""
    from pipelines.audit import read_record

    record = read_record(load_settings(), request_id)
    if record is None:
        console.print(f"[red]no audit record for request {request_id!r}[/]")
        raise typer.Exit(2)
    console.print_json(record.model_dump_json())


servers_app = typer.Typer(help="Production mode on loopback: PostgreSQL, MLflow (basic auth), Prefect server + worker.",
                          no_args_is_help=True)
app.add_typer(servers_app, name="servers")


@servers_app.command("up")
def servers_up() -> None:
    """Start PostgreSQL, MLflow, the Prefect server, work pool, deployment and worker (idempotent)."""
    from pipelines.servers import Servers, ServersError

    servers = Servers()
    try:
        endpoints = servers.up()
    except ServersError as error:
        console.print(f"[red]servers up: {error}[/]")
        raise typer.Exit(1) from None
    console.print(f"MLflow   {endpoints.mlflow_url}  (basic auth)")
    console.print(f"Prefect  {endpoints.prefect_api_url.removesuffix('/api')}  (work pool 'erasure', deployment 'deletion-request/erasure')")
    console.print(f"state    {servers.state_dir}  (credentials.json, logs/)")
    console.print(f"pipeline (writes):  source {servers.env_file('pipeline')}")
    console.print(f"auditors (read):    source {servers.env_file('auditor')}")


@servers_app.command("down")
def servers_down(purge: bool = typer.Option(False, help="also delete the databases, artifacts and credentials")) -> None:
    """Stop the worker, both servers and PostgreSQL, by process group."""
    from pipelines.servers import Servers, ServersError

    try:
        Servers().down(purge=purge)
    except ServersError as error:
        console.print(f"[red]servers down: {error}[/]")
        raise typer.Exit(1) from None
    console.print("servers stopped" + (" and their state deleted" if purge else ""))


@servers_app.command("status")
def servers_status() -> None:
    """One line per server: running, stopped, or starting/unhealthy. Exits 1 unless all are running."""
    from pipelines.servers import Servers

    servers = Servers()
    rows = servers.status()
    endpoints = servers.endpoints()
    table = Table("server", "state")
    for name, state in rows.items():
        table.add_row(name, state)
    console.print(table)
    console.print(f"MLflow {endpoints.mlflow_url}   Prefect API {endpoints.prefect_api_url}")
    raise typer.Exit(0 if set(rows.values()) == {"running"} else 1)


@request_app.command("batch")
def request_batch(
    request_files: list[Path] = typer.Argument(..., help="deletion request YAMLs"),
    dask_address: str = typer.Option(None, help="a running Dask scheduler (tcp://host:8786); default: a local cluster"),
    workers: int = typer.Option(2, help="worker processes of the local Dask cluster"),
    as_json: bool = typer.Option(False, "--json", help="print the outcomes as JSON"),
) -> None:
    """Process many requests: models in parallel on Dask, each model's requests in order. Exits 0 iff all passed."""
    from pipelines.batch import run_batch

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


if __name__ == "__main__":
    app()
