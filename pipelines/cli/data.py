"""`erasure data`: build the deterministic demo data set, retry a request's data erasure, purge erased objects."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from pipelines.cli.common import DEFAULT_PARAMS, console

data_app = typer.Typer(help="The deterministic demo data set (tracked by data.dvc).", no_args_is_help=True)


@data_app.command("build")
def data_build(
    out: Path = typer.Option(PROJECT_ROOT / "data", help="data root to write"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml with `data` and `digits` sections"),
) -> None:
    """Synthesise the restoration sets and split the digits; the same params always give the same bytes."""
    from pipelines.flow.base_model import data_files, load_params
    from unlearning.data.restoration import write_sets

    files = data_files(load_params(params))
    write_sets(files, out)
    console.print(f"wrote {len(files)} sets under {out}")


@data_app.command("erase")
def data_erase(request_id: str = typer.Argument(..., help="request whose data erasure failed")) -> None:
    """Retry a request's data erasure (the commit of the training data without its forgotten examples) that
    its record says failed; recorded as an audit event. Does nothing for a request whose erasure is done."""
    from pipelines.erasure.data_events import DataEventError, retry_erasure

    settings = load_settings()
    settings.export_environment()
    try:
        event = retry_erasure(settings, request_id)
    except DataEventError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if event is None:
        console.print(f"request {request_id}: its data erasure needs no retry")
        return
    erased = event.data_erasure or {}
    if event.status != "passed":
        console.print(f"[red]data erasure failed again[/]: {escape(event.error or '')} (audit event {event.request_id})")
        raise typer.Exit(1)
    console.print(f"data erasure {erased.get('status')}: commit {erased.get('commit')} on {erased.get('branch')} "
                  f"(audit event {event.request_id})")


@data_app.command("purge")
def data_purge(request_id: str = typer.Argument(..., help="request whose erased data objects to delete")) -> None:
    """Delete, from the DVC cache and every remote, the objects of the training files as they were before the
    request's data erasure; recorded (object hashes) as an audit event chained after the request's record."""
    from pipelines.erasure.data_events import DataEventError, purge_request
    from pipelines.erasure.training_data import PURGE_COST

    settings = load_settings()
    settings.export_environment()
    try:
        event = purge_request(settings, request_id)
    except DataEventError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if event is None:
        console.print(f"request {request_id}: already purged, nothing left to delete")
        return
    for removed in event.purge["removed"]:
        console.print(f"deleted {removed['md5']} from the DVC {removed['where']}")
    for kept in event.purge["kept_referenced"]:
        console.print(f"[yellow]kept[/] {kept}: the data branch still references it")
    console.print(f"purged {len(event.purge['objects'])} object(s) (audit event {event.request_id}).")
    console.print(f"[bold]What this costs[/]: {PURGE_COST}.", soft_wrap=True)
