"""`erasure servers`: production mode on loopback (PostgreSQL, MLflow with basic auth, Prefect server + worker)."""

from __future__ import annotations

import typer
from rich.table import Table

from pipelines.cli.common import console

servers_app = typer.Typer(help="Production mode on loopback: PostgreSQL, MLflow (basic auth), Prefect server + worker.",
                          no_args_is_help=True)


@servers_app.command("up")
def servers_up() -> None:
    """Start PostgreSQL, MLflow, the Prefect server, work pool, deployment and worker (idempotent)."""
    from pipelines.production.servers import Servers, ServersError

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
    from pipelines.production.servers import Servers, ServersError

    try:
        Servers().down(purge=purge)
    except ServersError as error:
        console.print(f"[red]servers down: {error}[/]")
        raise typer.Exit(1) from None
    console.print("servers stopped" + (" and their state deleted" if purge else ""))


@servers_app.command("status")
def servers_status() -> None:
    """One line per server: running, stopped, or starting/unhealthy. Exits 1 unless all are running."""
    from pipelines.production.servers import Servers

    servers = Servers()
    rows = servers.status()
    endpoints = servers.endpoints()
    table = Table("server", "state")
    for name, state in rows.items():
        table.add_row(name, state)
    console.print(table)
    console.print(f"MLflow {endpoints.mlflow_url}   Prefect API {endpoints.prefect_api_url}")
    raise typer.Exit(0 if set(rows.values()) == {"running"} else 1)
