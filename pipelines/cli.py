"""The `erasure` command: build data, train and register the base model, run and review deletion requests."""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.settings import PROJECT_ROOT, load_settings

app = typer.Typer(help="Erasure: verified, audited machine unlearning for deletion requests.", no_args_is_help=True)
data_app = typer.Typer(help="The deterministic demo data set (tracked by data.dvc).", no_args_is_help=True)
model_app = typer.Typer(help="The base model: train (DVC stage) and register in MLflow.", no_args_is_help=True)
request_app = typer.Typer(help="Run deletion requests through the Prefect flow.", no_args_is_help=True)
audit_app = typer.Typer(help="Review the audit trail.", no_args_is_help=True)
inbox_app = typer.Typer(help="The inbox of pending deletion requests.", no_args_is_help=True)
for sub_app, name in (
    (data_app, "data"),
    (model_app, "model"),
    (request_app, "request"),
    (inbox_app, "inbox"),
    (audit_app, "audit"),
):
    app.add_typer(sub_app, name=name)

console = Console()
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


@data_app.command("build")
def data_build(
    out: Path = typer.Option(PROJECT_ROOT / "data", help="data root to write"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml with `data` and `digits` sections"),
) -> None:
    """Synthesise the restoration sets and split the digits; the same params always give the same bytes."""
    from pipelines.base_model import data_files, load_params
    from unlearning.data.restoration import write_sets

    files = data_files(load_params(params))
    write_sets(files, out)
    console.print(f"wrote {len(files)} sets under {out}")


@data_app.command("erase")
def data_erase(request_id: str = typer.Argument(..., help="request whose data erasure failed")) -> None:
    """Retry a request's data erasure (the commit of the training data without its forgotten examples) that
    its record says failed; recorded as an audit event. Does nothing for a request whose erasure is done."""
    from pipelines.data_events import DataEventError, retry_erasure

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
    from pipelines.data_events import DataEventError, purge_request
    from pipelines.erasure import PURGE_COST

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


class Family(str, Enum):
    """A base model and its params.yaml section."""

    restorer = "restorer"
    classifier = "classifier"
    generator = "generator"
    judge = "judge"
    feature_network = "feature-network"
    encoder = "encoder"
    identity_net = "identity-net"
    identity_verifier = "identity-verifier"


def _family(family: Family):
    """(trainer, params section) of a base model family."""
    from pipelines import base_model

    return {
        Family.restorer: (base_model.train_base_model, "model"),
        Family.classifier: (base_model.train_base_classifier, "classifier"),
        Family.generator: (base_model.train_base_generator, "generator"),
        Family.judge: (base_model.train_digits_helper("judge"), "judge"),
        Family.feature_network: (base_model.train_digits_helper("feature_network"), "feature_network"),
        Family.encoder: (base_model.train_base_encoder, "encoder"),
        Family.identity_net: (base_model.train_identity_helper("identity_net"), "identity_net"),
        Family.identity_verifier: (base_model.train_identity_helper("identity_verifier"), "identity_verifier"),
    }[family]


def enter_numerics(mode: str) -> None:
    """Run the rest of this command in reproducible CPU numerics, unless `mode` is native or a GPU will do the work."""
    from unlearning import numerics
    from unlearning.device import best_device

    if mode != "native" and best_device().type == "cpu":
        _enter(numerics.REPRODUCIBLE, "native numerics[/] (results are this machine's own)")


def _enter(wanted, fallback: str) -> None:
    """Enter `wanted` numerics (restarting this command once if it was not started in them); a CPU that cannot
    run them is said with `fallback`, not fatal."""
    from unlearning import numerics

    try:
        numerics.enter(wanted)
    except numerics.NumericsUnavailable as error:
        console.print(f"[yellow]{fallback}: {error}")


@model_app.command("train")
def model_train(
    data: Path = typer.Option(PROJECT_ROOT / "data", help="data root"),
    out: Path = typer.Option(PROJECT_ROOT / "models" / "restorer", help="output directory"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml"),
    family: Family = typer.Option(Family.restorer, help="restorer (noise, rain, haze), classifier (digits), generator "
                                  "(digits GAN; needs the judge and feature network trained beside it), judge, feature-network"),
) -> None:
    """Train a base model (the DVC `train*` stages), always in reproducible numerics: the same bytes on any
    AVX2 CPU, so `dvc repro` on another machine finds the committed dvc.lock's md5s."""
    enter_numerics("reproducible")
    from pipelines.base_model import load_params

    trainer, _ = _family(family)
    metrics = trainer(load_params(params), data, out)
    console.print_json(json.dumps(metrics))


@model_app.command("register")
def model_register(
    model_dir: Path = typer.Option(PROJECT_ROOT / "models" / "restorer", help="trained model directory"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml (model name and alias)"),
    family: Family = typer.Option(Family.restorer, help="which params section names it (see `train --family`)"),
    training_rev: str = typer.Option("HEAD", help="data repository revision the model was trained on (its lineage)"),
) -> None:
    """Register a trained base model in MLflow and set its alias, if not done already (idempotent), tagged
    with its training data: the data repository commit and the DVC files the train stage read there."""
    from pipelines.base_model import load_params, register_base_model

    from pipelines.base_model import TRAINING_SETS
    from pipelines.datastore import DataRevisionError
    from pipelines.lineage import at_revision

    loaded = load_params(params)
    model = getattr(loaded, _family(family)[1])
    settings = load_settings()
    try:
        lineage = at_revision(settings.data_repo, training_rev, TRAINING_SETS[family.value])
    except DataRevisionError as error:
        console.print(f"[yellow]no training lineage recorded[/] (requests must then name forget.rev): {error}")
        lineage = None
    differing = workspace_differences(settings.data_repo, lineage) if lineage else []
    if differing:
        # The train stage read the workspace: a lineage naming the commit would claim data it did not train on.
        console.print(f"[yellow]no training lineage recorded[/]: the workspace's {', '.join(differing)} differ from "
                      f"what DVC tracks at {training_rev}; commit the data (`dvc add`, `git commit`) and retrain")
        lineage = None
    version = register_base_model(settings, model_dir, model.name, model.alias, lineage)
    trained_on = f" (trained on data commit {lineage.commit[:12]})" if lineage else ""
    console.print(f"{model.name}@{model.alias} -> version {version}{trained_on}")


def workspace_differences(repo: Path, lineage) -> list[str]:
    """The lineage's files whose bytes in the data repository's workspace are not the ones DVC tracks at the
    lineage's commit (a file absent from the workspace is not checked)."""
    import hashlib

    differing = []
    for path, md5 in lineage.files.items():
        local = Path(repo) / path
        if local.is_file() and hashlib.md5(local.read_bytes()).hexdigest() != md5:
            differing.append(path)
    return differing


def _refusal_without_traceback(record: logging.LogRecord) -> bool:
    """Logging filter: Prefect logs a failed task or flow with its traceback at ERROR. A refusal (an auth
    refusal, or a request the flow rejects: INPUT_ERRORS) is not the platform's fault: one line, no
    traceback, at WARNING. Tracebacks stay for everything else (`failed` outcomes)."""
    from pipelines.flow import INPUT_ERRORS
    from pipelines.registry import access_error

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
    from pipelines.replay import decided_outcome

    # At most once: a request already decided for this very file is answered from its local audit record,
    # before Prefect, MLflow, DVC or GX are imported (seconds instead of ~20). Anything else runs the flow.
    outcome = decided_outcome(load_settings(), request_file)
    if outcome is None:
        enter_numerics(load_settings().numerics)
        outcome = _run_deletion_flow(request_file)
    _print_outcome(outcome)
    raise typer.Exit(0 if outcome["status"] == "passed" else 1)


def _run_deletion_flow(request_file: Path) -> dict:
    from pipelines.flow import deletion_flow
    from pipelines.registry import access_error

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


@inbox_app.command("run")
def inbox_run(inbox: str = typer.Option(None, help="inbox directory (default: $ERASURE_HOME/inbox)")) -> None:
    """Process every pending request once, oldest first. Exits 1 if any request was not promoted."""
    from pipelines.inbox import inbox_flow

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


@app.command("serve")
def serve(
    inbox: str = typer.Option(None, help="inbox directory (default: $ERASURE_HOME/inbox)"),
    cron: str = typer.Option("0 3 * * *", help="schedule of the inbox flow (default: nightly at 03:00)"),
) -> None:
    """Register the scheduled inbox deployment with Prefect and serve it until interrupted."""
    from pipelines.inbox import serve as serve_inbox

    serve_inbox(inbox, cron)


@audit_app.command("list")
def audit_list(
    wide: bool = typer.Option(False, "--wide", help="also the chain position, record sha256 and MLflow run"),
    as_json: bool = typer.Option(False, "--json", help="every field of every row, as JSON"),
) -> None:
    """One line per audited request, newest first: request, verdict, model, versions, when (UTC).
    Fits 80 columns (CI logs, no TTY); --wide adds the chain position, record hash and run."""
    from pipelines.audit import list_records

    rows = list_records(load_settings())
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(box=None, pad_edge=False, show_edge=False)
    # Request ids are what auditors search for: never wrap or cut them; the model name gives way first.
    longest_id = max((len(row["request_id"]) for row in rows), default=7)
    table.add_column("request", no_wrap=True, min_width=longest_id)
    table.add_column("verdict", no_wrap=True, min_width=8)
    table.add_column("model", no_wrap=True, overflow="ellipsis", min_width=5)
    table.add_column("v", no_wrap=True, min_width=4)
    table.add_column("started UTC", no_wrap=True, min_width=11)
    if wide:
        for name in ("chain #", "record sha256", "MLflow run"):
            table.add_column(name, no_wrap=True)
    for row in rows:
        cells = [
            row["request_id"], row["status"], row["model"],
            f"{row['version_before'] or '-'}->{row['version_after'] or '-'}",
            row["started"].replace("T", " ")[5:16],  # MM-DD HH:MM: the year is in --wide and --json
        ]
        if wide:
            cells += [row["sequence"], row["record_sha256"][:16], row["run_id"]]
        table.add_row(*cells)
    if wide:
        Console(width=max(console.width, 200)).print(table, soft_wrap=True)
    else:
        console.print(table)


def _record_or_exit(request_id: str):
    from pipelines.audit import read_record

    record = read_record(load_settings(), request_id)
    if record is None:
        console.print(f"[red]no audit record for request {request_id!r}[/]")
        raise typer.Exit(2)
    return record


def _forget_summary(forget: dict) -> str:
    committed = forget.get("records")
    if committed:
        return (f"{forget.get('examples')} examples by {committed['count']} record ids (commitment "
                f"{committed['commitment'][:16]}..., key {committed['key_id']}) at {str(forget.get('commit'))[:12]}")
    return f"{forget.get('examples')} examples, sha256 {forget.get('sha256')}"


def _erasure_summary(erased: dict | None) -> str:
    if not erased:
        return "-"
    if erased.get("status") == "committed":
        return f"committed {erased['commit'][:12]} on {erased['branch']} ({len(erased.get('files', []))} files rewritten)"
    return f"{erased.get('status')}: {erased.get('reason') or erased.get('error') or erased.get('note') or ''}"


@audit_app.command("show")
def audit_show(
    request_id: str = typer.Argument(..., help="request id"),
    as_json: bool = typer.Option(False, "--json", help="only the stored record, as JSON"),
) -> None:
    """The whole audit record of one request: a readable summary, then every field."""
    record = _record_or_exit(request_id)
    if not as_json:
        summary = Table(show_header=False, title=f"audit record {record.request_id}")
        chain = record.chain
        for label, value in (
            ("verdict", record.status + (f" at stage {record.failed_stage}: {record.error}" if record.failed_stage else "")),
            ("model", f"{record.model.name} {record.model.version_before} -> {record.model.version_after or '-'}"),
            ("forget set", _forget_summary(record.forget_data)),
            ("data erasure", _erasure_summary(record.data_erasure)),
            ("method", json.dumps(record.method)),
            ("chain", f"{chain.model} #{chain.sequence} after {chain.previous_record_sha256}" if chain else "-"),
            ("signing key", f"{record.signing.key_fingerprint} ({record.signing.key_source})" if record.signing else "-"),
            ("started / finished", f"{record.started_at} / {record.finished_at}"),
        ):
            summary.add_row(label, str(value))
        console.print(summary)
        for reason in record.verdict.get("reasons", []):
            console.print(f"  - {reason}")
    console.print_json(record.model_dump_json())


@audit_app.command("verify")
def audit_verify(
    model: str = typer.Option(None, "--model", help="verify only this registered model's chain"),
    public_key: list[Path] = typer.Option([], "--public-key", help="extra trusted Ed25519 public key (PEM)"),
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", help="an earlier signed checkpoint (JSON, or a certificate that embeds one): "
        "prove the trail extends it (no records cut from the end, no history rewritten)"),
) -> None:
    """Recompute every chain and signature offline and re-hash every version's weights and ONNX.
    Exits 1 naming the first broken record."""
    from pipelines.audit.verify import verify_trail

    report = verify_trail(load_settings(), model, public_key, checkpoint)
    for chain in report.chains:
        state = "[green]ok[/]" if not chain.problems else f"[red]{len(chain.problems)} problem(s)[/]"
        console.print(
            f"chain {chain.chain}: {chain.records} records, {chain.attestations} attestations, "
            f"{chain.versions} versions re-hashed: {state}",
            soft_wrap=True,
        )
    for note in report.purged:
        console.print(f"  purged: {escape(note)}", soft_wrap=True)
    if not report.chains:
        console.print("[red]no audit ledger found: nothing to verify[/]")
        raise typer.Exit(1)
    if report.problems:
        # soft_wrap: one problem per line, whole, so it can be grepped; escape: problems quote raw values.
        console.print(f"[bold red]BROKEN[/] first broken: {escape(str(report.first_problem))}", soft_wrap=True)
        for problem in report.problems:
            console.print(f"  - {escape(str(problem))}", soft_wrap=True)
        raise typer.Exit(1)
    extended = f"; the trail extends {report.checkpoints} earlier checkpoint(s)" if checkpoint else ""
    console.print(f"[bold green]VERIFIED[/] every chain, signature and artifact hash matches{extended}", soft_wrap=True)


@audit_app.command("reproduce")
def audit_reproduce(
    request_id: str = typer.Argument(..., help="request whose unlearning to run again"),
    request: Path = typer.Option(None, help="the request file, where the record keeps no copy (checked against its sha256)"),
) -> None:
    """Re-run a request's recorded unlearning from its record (base version, data at its commits, method, seed,
    numerics), registering nothing, and compare the weights' sha256 with the attested one. Exits 0 when they
    match (bit-exact on the CPU; within the stated tolerance where that cannot be expected), 1 when they do not,
    2 when an input no longer matches the record (named)."""
    from pipelines.audit.reproduce import ReproductionError, load_reproducible_record, recorded_numerics, reproduce

    settings = load_settings()
    settings.export_environment()
    try:
        record = load_reproducible_record(settings, request_id)
        required = recorded_numerics(record)
        if required is not None:
            _enter(required, "not the recorded numerics[/] (compared within tolerance)")
        result = reproduce(settings, request_id, request, record)
    except ReproductionError as error:
        console.print(f"[bold red]cannot reproduce {escape(request_id)}:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    for check in result.checks:
        console.print(f"  [green]ok[/] {escape(check)}")
    for difference in result.differences:
        console.print(f"  [yellow]differs[/] {escape(difference)}")
    console.print(f"attested weights sha256   {result.attested_sha256}")
    console.print(f"reproduced weights sha256 {result.reproduced_sha256}")
    if result.bit_exact:
        console.print("[bold green]reproduced: bit-exact[/]")
    elif result.matches:
        console.print(f"[bold green]reproduced within tolerance[/] (weights relative distance "
                      f"{result.weights_relative_distance:.2e}; bit-exactness was not expected here)")
    else:
        detail = "; ".join(result.metric_deviations) or (
            f"weights relative distance {result.weights_relative_distance:.2e}" if result.weights_relative_distance is not None
            else "same inputs, code and numerics gave other weights")
        first = f" (first difference: {result.differences[0]})" if result.differences else ""
        console.print(f"[bold red]not reproduced[/]: {escape(detail)}{escape(first)}")
    raise typer.Exit(0 if result.matches else 1)


@audit_app.command("check-ids")
def audit_check_ids(
    request_id: str = typer.Argument(..., help="request id"),
    ids_file: Path = typer.Argument(..., help="the record ids, one per line"),
) -> None:
    """Check an id list against the keyed commitment in the request's record (needs the deployment's
    commitment key). Exits 0 when it is the list the request forgot, 1 when it is not."""
    from pipelines.commitment import IdListError, ids_match, key_id, parse_id_list

    record = _record_or_exit(request_id)
    settings = load_settings()
    committed = record.forget_data.get("records")
    if not committed:
        console.print(f"[red]request {request_id} did not name record ids: nothing to check[/]")
        raise typer.Exit(2)
    try:
        ids = parse_id_list(ids_file.read_text(), str(ids_file))
    except IdListError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if committed.get("key_id") != key_id(settings):
        console.print(f"[red]the record was committed with key {committed.get('key_id')}, this deployment's is {key_id(settings)}[/]")
        raise typer.Exit(2)
    if len(set(ids)) == committed["count"] and ids_match(settings, set(ids), committed["salt"], committed["commitment"]):
        console.print(f"[green]MATCH[/]: these {len(set(ids))} ids are the ones request {request_id} forgot")
        return
    console.print(f"[red]NO MATCH[/]: the record commits to {committed['count']} ids; this list has {len(set(ids))} "
                  "and is not the one the request forgot")
    raise typer.Exit(1)


@audit_app.command("report")
def audit_report(
    request_id: str = typer.Argument(..., help="request id"),
    out: Path = typer.Option(..., "--out", help="directory to write report.html into"),
) -> None:
    """A self-contained HTML report (plots embedded, no network) of one request."""
    from pipelines.audit.report import write_report

    _record_or_exit(request_id)
    path = write_report(load_settings(), request_id, out)
    console.print(f"report: {path}")


@audit_app.command("certificate")
def audit_certificate(
    request_id: str = typer.Argument(..., help="request id"),
    out: Path = typer.Option(Path("."), "--out", help="directory to write certificate.html into"),
) -> None:
    """A one-page deletion certificate (HTML) for the data subject or regulator."""
    from pipelines.audit.certificate import write_certificate

    _record_or_exit(request_id)
    path = write_certificate(load_settings(), request_id, out)
    console.print(f"certificate: {path}")


@audit_app.command("schema")
def audit_schema(
    out: Path = typer.Option(PROJECT_ROOT / "docs" / "audit-record.schema.json", "--out", help="file to write"),
) -> None:
    """Export the audit record's JSON Schema (docs/audit-record.schema.json is kept up to date by a test)."""
    from pipelines.audit.record import json_schema_text

    out.write_text(json_schema_text())
    console.print(f"schema: {out}")


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
