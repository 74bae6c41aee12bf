"""`erasure audit`: review the trail (list, show, verify, reproduce, check-ids, report, certificate, schema)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from pipelines.cli.common import console, enter

audit_app = typer.Typer(help="Review the audit trail.", no_args_is_help=True)


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
            enter(required, "not the recorded numerics[/] (compared within tolerance)")
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
    from pipelines.erasure.commitment import IdListError, ids_match, key_id, parse_id_list

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
