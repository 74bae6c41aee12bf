"""Offline verification of the whole trail: chains, records, attestations, and the artifacts behind versions.

Nothing here trusts a stored hash on its own: each record is re-hashed and compared with the ledger,
the chain links are recomputed, each attestation's signature is checked against trusted public keys,
and the weights and ONNX behind every registered version are downloaded and re-hashed. One file (~410
lines) on purpose: one pass over the trail, so each problem is reported once, in chain order.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.adapters.settings import Settings
from pipelines.audit import chain as chain_module
from pipelines.audit import checkpoint as checkpoint_module
from pipelines.audit import signing
from pipelines.audit.model_signature import TAG_MODEL_SIGNATURE
from pipelines.audit.record import AuditRecord, field_digests
from pipelines.audit.store import RECORD_ARTIFACT, local_record_path, read_run_artifact

WEIGHTS_ARTIFACT = "artifacts/weights.safetensors"
ONNX_ARTIFACT = "onnx/model.onnx"


@dataclass(frozen=True)
class Problem:
    chain: str
    sequence: int | None  # None: not attributable to a record (e.g. a base version)
    request_id: str | None
    check: str
    detail: str

    def __str__(self) -> str:
        if self.sequence is not None:
            where = f"record #{self.sequence} (request {self.request_id})"
        else:
            where = f"unchained (request {self.request_id})" if self.request_id else "trail"
        return f"{self.chain} {where}: {self.check}: {self.detail}"


@dataclass
class ChainReport:
    chain: str
    records: int = 0
    versions: int = 0
    attestations: int = 0
    problems: list[Problem] = field(default_factory=list)
    read: list[tuple[int, AuditRecord]] = field(default_factory=list)  # the records that validated, by sequence


@dataclass
class TrailReport:
    chains: list[ChainReport]
    checkpoints: int = 0  # checkpoints proven extended by the trail
    purged: list[str] = field(default_factory=list)  # records whose data hashes were purged on purpose (not problems)

    @property
    def problems(self) -> list[Problem]:
        return [problem for report in self.chains for problem in report.problems]

    @property
    def ok(self) -> bool:
        return bool(self.chains) and not self.problems

    @property
    def first_problem(self) -> Problem | None:
        ordered = sorted(self.problems, key=lambda p: (p.sequence is None, p.sequence or 0))
        return ordered[0] if ordered else None


def sha256_bytes(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class _Artifacts:
    """Downloads and hashes each version's weights and ONNX once per verification."""

    def __init__(self, settings: Settings):
        from pipelines.adapters.registry import client

        self.settings = settings
        self.client = client(settings)
        self._cache: dict[tuple[str, str, str], str | None] = {}
        self._downloads = tempfile.TemporaryDirectory(prefix="erasure-verify-")

    def _version_dir(self, model: str, version: str) -> Path:
        """The version's model directory, downloaded once per verification (weights and signature read it)."""
        import mlflow

        key = (model, version, "dir")
        if key not in self._cache:
            self._cache[key] = mlflow.artifacts.download_artifacts(
                f"models:/{model}/{version}", dst_path=f"{self._downloads.name}/{model}/{version}")
        return Path(self._cache[key])

    def weights_sha256(self, model: str, version: str) -> str | None:
        key = (model, version, "weights")
        if key not in self._cache:
            from mlflow.exceptions import MlflowException

            from pipelines.adapters import adoption, registry

            try:
                found = self.client.get_model_version(model, version)
                if adoption.is_adopted(found.tags):
                    # An adopted model's weights live in its owner's layout: read them as adoption did.
                    self._cache[key] = registry.weights_sha256(registry.read_adopted_version(model, found).model)
                else:
                    weights = self._version_dir(model, version) / WEIGHTS_ARTIFACT
                    self._cache[key] = sha256_bytes(weights.read_bytes()) if weights.is_file() else None
            except (MlflowException, OSError, ValueError):
                self._cache[key] = None
        return self._cache[key]

    def model_signature_problem(self, model: str, version: str) -> str | None:
        """Why the version's files no longer verify against its OpenSSF signature (model.sig), or None."""
        from mlflow.exceptions import MlflowException

        from pipelines.audit.model_signature import ModelSignatureError, public_key_path, verify_model_dir

        key = public_key_path(self.settings)
        if not key.is_file():
            return f"no model-signing public key at {key} to check model.sig with"
        try:
            local = self._version_dir(model, version)
            verify_model_dir(local, key)
        except (ModelSignatureError, MlflowException, OSError) as error:
            return str(error).replace(self._downloads.name, "")
        return None

    def close(self) -> None:
        self._downloads.cleanup()

    def onnx_sha256(self, model: str, version: str, run_id: str | None) -> str | None:
        key = (model, version, "onnx")
        if key not in self._cache:
            content = read_run_artifact(self.settings, run_id, ONNX_ARTIFACT) if run_id else None
            self._cache[key] = sha256_bytes(content) if content is not None else None
        return self._cache[key]


def _describe_edit(document: bytes, recorded_fields: dict[str, str]) -> str:
    try:
        actual = field_digests(json.loads(document))
    except ValueError:
        return "the stored record is no longer valid JSON"
    changed = sorted(k for k in set(actual) | set(recorded_fields) if actual.get(k) != recorded_fields.get(k))
    if not changed:
        return "bytes changed (whitespace or key order) but no field value did"
    return "edited field(s): " + ", ".join(changed)


def verify_chain(
    settings: Settings, chain: str, trusted: dict, artifacts: _Artifacts, audit_runs: dict[str, dict[str, str]],
    deleted_runs: frozenset[str] = frozenset(),
) -> ChainReport:
    from mlflow.exceptions import MlflowException

    report = ChainReport(chain)
    entries = chain_module.read_ledger(chain_module.ledger_path(settings, chain))
    report.records = len(entries)
    client = artifacts.client

    def problem(sequence, request_id, check, detail):
        report.problems.append(Problem(chain, sequence, request_id, check, detail))

    produced_by: dict[str, tuple[int, str, AuditRecord]] = {}  # version -> (sequence, request, record)
    for index, entry in enumerate(entries):
        seq, rid = index, entry.request_id
        expected_previous = entries[index - 1].record_sha256 if index else None
        if entry.sequence != index:
            problem(seq, rid, "ledger order", f"ledger line {index + 1} holds sequence {entry.sequence}, expected {index}: lines were reordered, deleted or inserted")
        if entry.previous_record_sha256 != expected_previous:
            problem(seq, rid, "chain link", f"ledger previous_record_sha256 {str(entry.previous_record_sha256)[:16]}... != sha256 of the record before it {str(expected_previous)[:16]}...: a record was deleted, inserted or reordered")
        if entry.mlflow_run_id in deleted_runs:
            # Still readable, but gone from every MLflow view, and `mlflow gc` would destroy it.
            problem(seq, rid, "run deleted", f"MLflow run {entry.mlflow_run_id} holding this record is deleted (lifecycle 'deleted'): restore it (MlflowClient().restore_run) before `mlflow gc` destroys it")
        document = read_run_artifact(settings, entry.mlflow_run_id, RECORD_ARTIFACT) if entry.mlflow_run_id else None
        if document is None:
            local = local_record_path(settings, entry.request_id)
            document = local.read_bytes() if not entry.mlflow_run_id and local.exists() else None
        if document is None:
            problem(seq, rid, "record missing", f"{RECORD_ARTIFACT} of MLflow run {entry.mlflow_run_id} is gone: the record was deleted")
            continue
        digest = sha256_bytes(document)
        if digest != entry.record_sha256:
            problem(seq, rid, "record edited", f"sha256 {digest[:16]}... != ledger {entry.record_sha256[:16]}...; {_describe_edit(document, entry.field_sha256)}")
            continue
        try:
            record = AuditRecord.model_validate_json(document)
        except ValueError as error:
            problem(seq, rid, "schema", f"record does not validate: {error}")
            continue
        report.read.append((index, record))
        link = record.chain
        if link is None or link.sequence != index or link.previous_record_sha256 != expected_previous:
            problem(seq, rid, "chain link", f"record says chain {link!r}, expected sequence {index} after {str(expected_previous)[:16]}...")
        if record.request_id != entry.request_id:
            problem(seq, rid, "request id", f"record request_id {record.request_id!r} != ledger {entry.request_id!r}")
        local = local_record_path(settings, record.request_id)
        if local.exists():
            copy = local.read_bytes()
            try:
                same_run = json.loads(copy).get("mlflow_run_id") == entry.mlflow_run_id
            except ValueError:
                same_run = True
            if same_run and copy != document:
                problem(seq, rid, "local copy edited", f"{local} differs from the MLflow record; {_describe_edit(copy, entry.field_sha256)}")
        if record.model.version_after:
            produced_by[record.model.version_after] = (seq, rid, record)
        if record.status == "passed" and record.event == "request":
            _check_attestation(settings, entry, record, trusted, lambda c, d: problem(seq, rid, c, d))
            report.attestations += 1
        if record.model.version_before and record.model.weights_sha256_before:
            actual = artifacts.weights_sha256(record.model.name, record.model.version_before)
            if actual != record.model.weights_sha256_before:
                problem(seq, rid, "weights swapped", f"version {record.model.version_before} (before) weights hash to {str(actual)[:16]}..., record says {record.model.weights_sha256_before[:16]}...")

    try:
        registered = client.get_registered_model(chain)
        versions = client.search_model_versions(f"name = '{chain}'")
    except MlflowException:
        registered, versions = None, []
    last = entries[-1] if entries else None
    if registered is not None and entries:
        head, length = registered.tags.get(chain_module.TAG_CHAIN_HEAD), registered.tags.get(chain_module.TAG_CHAIN_LENGTH)
        if head != last.record_sha256 or length != str(len(entries)):
            problem(last.sequence, last.request_id, "chain head", f"registry tags say head {str(head)[:16]}... length {length}; ledger ends at {last.record_sha256[:16]}... length {len(entries)}: records were removed from or added to the end")

    ledgered_runs = {entry.mlflow_run_id for entry in entries}
    for run_id, tags in audit_runs.items():
        if chain_module.chain_name(tags.get("erasure.model")) == chain and run_id not in ledgered_runs:
            problem(None, tags.get("erasure.request_id"), "record not in ledger", f"MLflow run {run_id} holds record {tags.get(chain_module.TAG_RECORD_SHA, '')[:16]}... that no ledger line covers: deleted ledger line or injected record")

    for version in sorted(versions, key=lambda v: int(v.version)):
        number = str(version.version)
        report.versions += 1
        seq, rid, record = produced_by.get(number, (None, version.tags.get("erasure.request_id"), None))
        actual = artifacts.weights_sha256(chain, number)
        tagged = version.tags.get("erasure.weights_sha256")
        if actual is None or actual != tagged:
            problem(seq, rid, "weights swapped", f"version {number} weights hash to {str(actual)[:16]}..., version tag says {str(tagged)[:16]}...")
        if version.tags.get(TAG_MODEL_SIGNATURE):
            signature_problem = artifacts.model_signature_problem(chain, number)
            if signature_problem:
                problem(seq, rid, "model signature", f"version {number}: {signature_problem}")
        if record is None:
            if version.tags.get("erasure.request_id"):
                problem(None, rid, "version without record", f"version {number} was made by request {rid} but no ledgered record produced it")
            continue
        if record.model.weights_sha256_after != actual:
            problem(seq, rid, "weights swapped", f"version {number} weights hash to {str(actual)[:16]}..., audit record says {str(record.model.weights_sha256_after)[:16]}...")
        if version.tags.get(chain_module.TAG_RECORD_SHA) != entries[seq].record_sha256:
            problem(seq, rid, "version tag", f"version {number} tag {chain_module.TAG_RECORD_SHA} does not name this record")
        recorded_onnx = (record.export or {}).get("onnx_sha256")
        if recorded_onnx:
            onnx = artifacts.onnx_sha256(chain, number, version.run_id)
            if onnx != recorded_onnx or version.tags.get("erasure.onnx_sha256") != recorded_onnx:
                problem(seq, rid, "onnx swapped", f"version {number} ONNX hashes to {str(onnx)[:16]}..., record says {recorded_onnx[:16]}..., tag says {str(version.tags.get('erasure.onnx_sha256'))[:16]}...")
    return report


def _check_attestation(settings: Settings, entry, record: AuditRecord, trusted: dict, problem) -> None:
    raw = read_run_artifact(settings, entry.mlflow_run_id, signing.ATTESTATION_ARTIFACT)
    if raw is None:
        problem("attestation missing", f"{signing.ATTESTATION_ARTIFACT} of MLflow run {entry.mlflow_run_id} is gone")
        return
    if entry.attestation_sha256 and sha256_bytes(raw) != entry.attestation_sha256:
        problem("attestation edited", f"sha256 {sha256_bytes(raw)[:16]}... != ledger {entry.attestation_sha256[:16]}...")
    try:
        statement = signing.check_attestation(json.loads(raw), trusted)
    except (ValueError, signing.AttestationError) as error:
        problem("signature", str(error))
        return
    expected = {
        "request_id": record.request_id,
        "model": record.model.name,
        "version": record.model.version_after,
        "weights_sha256": record.model.weights_sha256_after,
        "onnx_sha256": (record.export or {}).get("onnx_sha256"),
        "audit_record_sha256": entry.record_sha256,
        "chain_sequence": entry.sequence,
    }
    for key, value in expected.items():
        if statement.get(key) != value:
            problem("attestation binding", f"statement.{key} = {statement.get(key)!r}, the trail says {value!r}")
    envelope = read_run_artifact(settings, entry.mlflow_run_id, signing.DSSE_ARTIFACT)
    if envelope is None:
        return  # records written before the in-toto envelope existed
    try:
        intoto = signing.check_dsse(json.loads(envelope), trusted)
    except (ValueError, signing.AttestationError) as error:
        problem("dsse signature", str(error))
        return
    if intoto != signing.intoto_statement(statement):
        problem("dsse binding", "the in-toto statement does not state the attestation's subjects and record hash")


def _audit_runs(settings: Settings) -> dict[str, dict[str, str]]:
    from pipelines.adapters.registry import client

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.audit_experiment)
    if experiment is None:
        return {}
    return {
        run.info.run_id: run.data.tags
        for run in mlflow_client.search_runs([experiment.experiment_id], max_results=50000)
        if chain_module.TAG_RECORD_SHA in run.data.tags
    }


def _deleted_runs(settings: Settings) -> frozenset[str]:
    """Runs of the audit experiment that were soft-deleted (the MLflow UI's delete)."""
    from mlflow.entities import ViewType

    from pipelines.adapters.registry import client

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.audit_experiment)
    if experiment is None:
        return frozenset()
    runs = mlflow_client.search_runs([experiment.experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=50000)
    return frozenset(run.info.run_id for run in runs)


def verify_trail(
    settings: Settings, model: str | None = None, public_keys: list[Path] = (), checkpoints: list[Path] = ()
) -> TrailReport:
    """Verify every chain (or only `model`'s); the report lists every problem, ordered by record.
    Each of `checkpoints` (a checkpoint JSON, or a certificate embedding one) must be validly signed and
    extended by its chain: same records up to its length."""
    trusted = signing.trusted_keys(settings, list(public_keys))
    names = [chain_module.chain_name(model)] if model else chain_module.chains(settings)
    held = []
    for path in checkpoints:
        try:
            held.append((path, checkpoint_module.check_signature(checkpoint_module.read_checkpoint(path), trusted)))
        except checkpoint_module.CheckpointError as error:
            held.append((path, error))
        if not isinstance(held[-1][1], Exception) and held[-1][1]["chain"] not in names:
            names.append(held[-1][1]["chain"])
    artifacts = _Artifacts(settings)
    runs, deleted = _audit_runs(settings), _deleted_runs(settings)
    reports = []
    try:
        for name in names:
            report = verify_chain(settings, name, trusted, artifacts, runs, deleted)
            if model and report.records == 0:
                report.problems.append(Problem(name, None, None, "no ledger", f"no audit ledger for model {model!r} at {chain_module.ledger_path(settings, name)}"))
            reports.append(report)
    finally:
        artifacts.close()
    purged = _data_checks(settings, reports)
    proven = 0
    for path, body in held:
        if isinstance(body, Exception):
            if not reports:
                reports.append(ChainReport(chain_module.UNATTRIBUTED))
            reports[0].problems.append(Problem(reports[0].chain, None, None, "checkpoint", f"{path}: {body}"))
            continue
        report = next(r for r in reports if r.chain == body["chain"])
        entries = chain_module.read_ledger(chain_module.ledger_path(settings, body["chain"]))
        found = checkpoint_module.extension_problems(body, entries)
        for detail in found:
            report.problems.append(Problem(body["chain"], None, None, "checkpoint not extended", f"{path}: {detail}"))
        proven += not found
    return TrailReport(reports, proven, purged)


def _data_hashes(record: AuditRecord) -> set[str]:
    files = [record.forget_data, *record.retain_data, *record.evaluation_data]
    files += (record.forget_data.get("records") or {}).get("training_sets", [])
    return {f["dvc_md5"] for f in files if isinstance(f, dict) and f.get("dvc_md5")}


def _data_checks(settings: Settings, reports: list[ChainReport]) -> list[str]:
    """Residue (problems) and purged data hashes (notes), for trails with data erasures or purges.

    Residue: a forgotten example (by keyed content digest) in the data branch's current training data, or
    an object a purge deleted present again in the DVC cache or a remote."""
    from pipelines.erasure import training_data as erasure

    erasures = [(report, seq, record) for report in reports for seq, record in report.read
                if record.data_erasure and record.data_erasure.get("status") in ("committed", "unchanged")]
    purges = [(report, seq, record) for report in reports for seq, record in report.read if record.purge]
    if not erasures and not purges:
        return []
    notes = []
    purged = {md5: (seq, record) for _, seq, record in purges for md5 in record.purge.get("objects", [])}
    for report in reports:
        for seq, record in report.read:
            hit = sorted(_data_hashes(record) & set(purged))
            if hit:
                by = ", ".join(sorted({f"#{purged[md5][0]} ({purged[md5][1].request_id})" for md5 in hit}))
                notes.append(f"{report.chain} record #{seq} (request {record.request_id}): data hash(es) "
                             f"{', '.join(h[:12] for h in hit)} purged by {by}: no longer readable, on purpose")
    try:
        outputs = sorted({out for _, _, record in erasures for out in _outputs(settings, record.data_erasure)})
        keys = {key for _, _, record in erasures for key in record.data_erasure.get("example_keys", [])}
        branch = erasure.data_branch(settings)
        present = erasure.scan(settings, branch, outputs, keys)[0] if keys and outputs else {}
        for report, seq, record in erasures:
            own = set(record.data_erasure.get("example_keys", []))
            back = {path: int(sum(k in own for k, row in zip(_keys(settings, hit), hit["rows"]) if row))
                    for path, hit in present.items()}
            back = {path: count for path, count in back.items() if count}
            if back:
                where = ", ".join(f"{path} ({count})" for path, count in sorted(back.items()))
                report.problems.append(Problem(report.chain, seq, record.request_id, "residue",
                                               f"forgotten example(s) are back in the training data on branch {branch}: {where}"))
        objects = sorted(purged)
        for found in erasure.present_objects(settings, objects) if objects else []:
            seq, record = purged[found["md5"]]
            report = next(r for r in reports if any(s == seq and rec is record for s, rec in r.read))
            report.problems.append(Problem(report.chain, seq, record.request_id, "residue",
                                           f"object {found['md5']} that this purge deleted is in the DVC {found['where']} again ({found['path']})"))
    except Exception as error:  # noqa: BLE001 - the data repository may be unreachable from here
        first = (erasures or purges)[0]
        first[0].problems.append(Problem(first[0].chain, first[1], first[2].request_id, "residue",
                                         f"cannot check the training data for residue: {type(error).__name__}: {error}"))
    return notes


def _outputs(settings: Settings, data_erasure: dict) -> list[str]:
    import yaml

    outputs = []
    for dvc_file in data_erasure.get("dvc_files", []):
        document = yaml.safe_load((Path(settings.data_repo) / dvc_file).read_text()) or {}
        outputs += [(Path(dvc_file).parent / out["path"]).as_posix() for out in document.get("outs", [])]
    return outputs


def _keys(settings: Settings, hit: dict) -> list[str]:
    from pipelines.erasure.training_data import example_keys
    from unlearning.data.pairs import PairSet

    return example_keys(settings, PairSet.from_arrays("residue", hit["arrays"]))
