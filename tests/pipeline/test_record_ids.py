"""Deletion requests the way privacy teams file them: by record id, against the served model's own training
data (no file, no revision), with the examples then erased from the training data and purged from DVC.

Real git, DVC (local remote), MLflow and Prefect throughout, on a data repository of this module's own (the
erasure commits to it) holding the digits sets and the tiny restoration sets. The tests run in file order:
one digits request is erased, then purged; residue is put back last.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from pipelines.adapters import registry
from pipelines.adapters.settings import load_settings
from pipelines.audit import read_record
from pipelines.audit.report import write_report
from pipelines.audit.verify import verify_trail
from pipelines.erasure import data_events, lineage
from pipelines.erasure.commitment import ids_match
from pipelines.flow.base_model import TRAINING_SETS
from pipelines.flow.request import parse_request
from pipelines.kinds.files import RecordIdError, pull_files
from pipelines.operations.coalesce import coalesced_flow
from tests.conftest import commit_data, dvc, git
from tests.digits_world import make_digits_world
from tests.pipeline.conftest import register_model, request_file, run_flow
from unlearning.data.digits import DigitsDataConfig, build_digits_sets, class_set_path
from unlearning.data.pairs import CorruptDataError, decode_arrays, encode_arrays
from unlearning.data.restoration import set_path

pytestmark = [pytest.mark.e2e]

CLASSIFIER, RESTORER = "ids-classifier", "ids-restorer"
TRAIN = "data/digits/train.safetensors"
DIGITS = build_digits_sets(DigitsDataConfig())
TRAIN_IDS = decode_arrays(DIGITS["digits/train.safetensors"], "train")[0]["ids"]
# Ids above 1000 so that a scan for them cannot match counts or small numbers in a record.
FORGOTTEN = [int(i) for i in TRAIN_IDS[TRAIN_IDS > 1000][:6]]
COALESCED = ([int(i) for i in TRAIN_IDS[TRAIN_IDS > 1000][10:13]], [int(i) for i in TRAIN_IDS[TRAIN_IDS > 1000][20:22]])
ANY_CLASSIFICATION = {"forget_max_accuracy": 1.0, "test_max_drop": 0.5, "mia_max_excess": 0.5}


@pytest.fixture(scope="module")
def repo(tiny_world, tmp_path_factory):
    """A data repository of this module's own, registered models trained on its first commit."""
    root = tmp_path_factory.mktemp("ids-data")
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tests@erasure.invalid")
    git(repo, "config", "user.name", "erasure tests")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "-d", "local", str(root / "remote"))
    commit_data(repo, tiny_world.files | DIGITS, "digits and tiny restoration sets")
    previous = os.environ.get("ERASURE_DATA_REPO")
    os.environ["ERASURE_DATA_REPO"] = str(repo)
    for name, architecture, model, family in ((CLASSIFIER, "digits-mlp", make_digits_world(seed=0).model, "classifier"),
                                               (RESTORER, "restorer-unet", tiny_world.fresh_model(), "restorer")):
        register_model(name, model, root / name, architecture, lineage.at_revision(repo, "HEAD", TRAINING_SETS[family]))
    yield repo
    if previous is None:
        os.environ.pop("ERASURE_DATA_REPO", None)
    else:
        os.environ["ERASURE_DATA_REPO"] = previous


def digits_ids_request(directory: Path, request_id: str, **forget) -> Path:
    return request_file(
        directory, request_id, model=f"{CLASSIFIER}@champion",
        forget={"evaluation": f"data/{class_set_path('test', 8)}", **forget},
        retain={"paths": [TRAIN], "evaluation": ["data/digits/test.safetensors"]},
        method={"name": "finetune", "params": {"steps": 5}}, thresholds=ANY_CLASSIFICATION,
    )


def ids_at(repo: Path, path: str, rev: str) -> set[int]:
    import dvc.api

    return set(decode_arrays(dvc.api.read(path, repo=str(repo), rev=rev, mode="rb"), path)[0]["ids"].tolist())


@pytest.fixture(scope="module")
def erased(repo, tmp_path_factory):
    """The digits request by record ids, run once through the flow: (outcome, record)."""
    before = registry.alias_version(load_settings(), CLASSIFIER, "champion")
    outcome = run_flow(digits_ids_request(tmp_path_factory.mktemp("requests"), "req-ids-4711", records=FORGOTTEN))
    assert outcome["status"] == "passed", outcome
    assert outcome["version_before"] == before
    return outcome, read_record(load_settings(), "req-ids-4711")


def test_a_request_by_record_ids_forgets_exactly_those_examples_of_the_training_revision(erased, repo):
    _, record = erased
    assert record.forget_data["examples"] == len(FORGOTTEN)
    assert record.unlearning["retain_examples_excluded_as_forget"] == len(FORGOTTEN)
    assert record.forget_data["commit"] == record.training_data["commit"] == lineage_commit_of(CLASSIFIER, "1")
    assert "training data of ids-classifier version 1" in record.forget_data["rev_source"]
    committed = record.forget_data["records"]
    assert committed["count"] == len(FORGOTTEN)
    assert ids_match(load_settings(), FORGOTTEN, committed["salt"], committed["commitment"])
    assert not ids_match(load_settings(), FORGOTTEN[:-1], committed["salt"], committed["commitment"])


def lineage_commit_of(model: str, version: str) -> str:
    return MlflowClient().get_model_version(model, version).tags[lineage.TAG_DATA_COMMIT]


def test_the_new_data_revision_lacks_them_and_is_the_new_versions_lineage(erased, repo):
    outcome, record = erased
    erasure = record.data_erasure
    assert erasure["status"] == "committed" and erasure["branch"] == "main"
    new, old = erasure["commit"], record.training_data["commit"]
    assert lineage_commit_of(CLASSIFIER, outcome["version_after"]) == new
    assert "req-ids-4711" in git(repo, "log", "-1", "--format=%B", new)
    assert set(FORGOTTEN) <= ids_at(repo, TRAIN, old)
    assert not ids_at(repo, TRAIN, new) & set(FORGOTTEN)
    assert ids_at(repo, TRAIN, new) == ids_at(repo, TRAIN, old) - set(FORGOTTEN)
    for label in range(10):
        assert not ids_at(repo, f"data/{class_set_path('train', label)}", new) & set(FORGOTTEN)
    # Nothing but the files that held them changed: the split, and the class files that held copies.
    assert {f["path"] for f in erasure["files"]} == {TRAIN} | {f"data/{class_set_path('train', int(label))}"
                                                               for label in labels_of(FORGOTTEN)}


def test_with_erasure_off_the_new_version_keeps_its_parents_training_data(erased, repo, tmp_path, monkeypatch):
    """Nothing removed from the data, so the unlearned version's lineage is its parent's (not lost)."""
    outcome, _ = erased
    parent = outcome["version_after"]
    kept = sorted(ids_at(repo, TRAIN, lineage_commit_of(CLASSIFIER, parent)))
    monkeypatch.setenv("ERASURE_ERASE_DATA", "false")
    second = run_flow(digits_ids_request(tmp_path, "req-ids-erasure-off", records=kept[:3]))
    assert second["status"] == "passed", second
    record = read_record(load_settings(), "req-ids-erasure-off")
    assert record.data_erasure["status"] == "skipped" and "ERASURE_ERASE_DATA" in record.data_erasure["reason"]
    assert lineage_commit_of(CLASSIFIER, second["version_after"]) == lineage_commit_of(CLASSIFIER, parent)
    tags = MlflowClient().get_model_version(CLASSIFIER, second["version_after"]).tags
    assert tags[lineage.TAG_DATA_ERASURE] == "skipped"


def labels_of(ids: list[int]) -> set[int]:
    arrays = decode_arrays(DIGITS["digits/train.safetensors"], "train")[0]
    return set(arrays["targets"][np.isin(arrays["ids"], ids)].tolist())


RETRAIN = """
import json, sys
from pathlib import Path
import torch
from unlearning.data.pairs import PairSet, decode_arrays
from unlearning.models import build_model
from unlearning.tasks import Classification
from unlearning.train import TrainConfig, train_model

arrays = decode_arrays(Path("data/digits/train.safetensors").read_bytes(), "train")[0]
train = PairSet.from_arrays("train", arrays)
torch.manual_seed(0)
model = build_model("digits-mlp", {"hidden": 16, "depth": 1})
train_model(model, train, Classification(10), TrainConfig(steps=5, batch_size=32), torch.device("cpu"), show_progress=False)
Path("trained").mkdir(exist_ok=True)
Path("trained/ids.json").write_text(json.dumps(sorted(train.ids.tolist())))
"""


def test_a_retrain_from_the_new_revision_never_sees_them(erased, repo, tmp_path):
    _, record = erased
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "checkout", "-q", record.data_erasure["commit"])
    dvc(clone, "pull", "-q", "data.dvc")
    (clone / "retrain.py").write_text(RETRAIN)
    (clone / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"retrain": {
        "cmd": f"{sys.executable} retrain.py", "deps": [TRAIN, "retrain.py"], "outs": ["trained/ids.json"]}}}))
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=clone, check=True, env=environment, capture_output=True)
    trained_on = set(json.loads((clone / "trained" / "ids.json").read_text()))
    assert len(trained_on) == len(TRAIN_IDS) - len(FORGOTTEN)
    assert not trained_on & set(FORGOTTEN)


def _mentions(text: str, ids: list[int]) -> list[int]:
    return [i for i in ids if re.search(rf"(?<![0-9A-Za-z.]){i}(?![0-9A-Za-z.])", text)]


def test_the_record_mlflow_and_the_report_never_hold_the_ids(erased, tmp_path):
    outcome, record = erased
    settings = load_settings()
    client = MlflowClient()
    run = client.get_run(record.mlflow_run_id)
    texts = {"record": record.model_dump_json(), "run params": json.dumps(run.data.params),
             "run tags": json.dumps(run.data.tags),
             "version tags": json.dumps(client.get_model_version(CLASSIFIER, outcome["version_after"]).tags)}
    for artifact in client.list_artifacts(record.mlflow_run_id, "audit"):
        texts[artifact.path] = Path(client.download_artifacts(record.mlflow_run_id, artifact.path, str(tmp_path))).read_text()
    html = write_report(settings, record.request_id, tmp_path / "report").read_text()
    assert f"named by {len(FORGOTTEN)} record ids" in html and record.data_erasure["commit"][:12] in html
    texts["report"] = re.sub(r"data:image/[^\"')]+", "", html)
    from pipelines.audit.certificate import write_certificate
    from pipelines.cli import app

    certificate = write_certificate(settings, record.request_id, tmp_path / "certificate").read_text()
    assert "record ids, committed to as" in certificate
    texts["certificate"] = re.sub(r"data:image/[^\"')]+", "", certificate)
    texts["audit show"] = CliRunner().invoke(app, ["audit", "show", record.request_id]).output
    for where, text in texts.items():
        assert _mentions(text, FORGOTTEN) == [], where
    # The scan would see them: the request file holds them as written.
    assert _mentions(json.dumps(FORGOTTEN), FORGOTTEN) == FORGOTTEN


def test_an_auditor_given_the_id_list_can_check_it_against_the_record(erased, tmp_path):
    from pipelines.cli import app

    listed = tmp_path / "subject-4711.ids"
    listed.write_text("\n".join(map(str, reversed(FORGOTTEN))) + "\n")
    assert CliRunner().invoke(app, ["audit", "check-ids", "req-ids-4711", str(listed)]).exit_code == 0
    listed.write_text("\n".join(map(str, FORGOTTEN[:-1] + [FORGOTTEN[-1] + 1])) + "\n")
    result = CliRunner().invoke(app, ["audit", "check-ids", "req-ids-4711", str(listed)])
    assert result.exit_code == 1 and "NO MATCH" in result.output


def test_coalesced_requests_each_get_their_own_commitment_and_one_revision_removes_the_union(erased, repo, tmp_path):
    first, second = COALESCED
    files = [str(digits_ids_request(tmp_path, "req-ids-group-a", records=first)),
             str(digits_ids_request(tmp_path, "req-ids-group-b", records=second))]
    outcomes, alone = coalesced_flow(files)
    assert alone == [] and [o["status"] for _, o in outcomes] == ["passed", "passed"], outcomes
    records = [read_record(load_settings(), rid) for rid in ("req-ids-group-a", "req-ids-group-b")]
    settings = load_settings()
    for record, ids in zip(records, COALESCED):
        committed = record.forget_data["records"]
        assert committed["count"] == len(ids) and ids_match(settings, ids, committed["salt"], committed["commitment"])
        assert record.data_erasure["examples"] == len(ids) and record.data_erasure["union_examples"] == len(first + second)
    assert records[0].forget_data["records"]["commitment"] != records[1].forget_data["records"]["commitment"]
    commit = records[0].data_erasure["commit"]
    assert records[1].data_erasure["commit"] == commit
    assert git(repo, "rev-list", "--count", f"{erased[1].data_erasure['commit']}..{commit}") == "1"
    message = git(repo, "log", "-1", "--format=%B", commit)
    assert "req-ids-group-a" in message and "req-ids-group-b" in message
    assert not ids_at(repo, TRAIN, commit) & set(first + second)


def test_a_failed_data_commit_is_recorded_and_retried_once_per_request(erased, repo, tmp_path):
    from pipelines.erasure import training_data as erasure

    ids = [int(i) for i in TRAIN_IDS[TRAIN_IDS > 1000][30:33]]
    edited = repo / "data" / "digits" / "test.safetensors"
    kept = edited.read_bytes()
    edited.write_bytes(kept + b"an operator's uncommitted edit")
    try:
        outcome = run_flow(digits_ids_request(tmp_path, "req-ids-dirty", records=ids))
    finally:
        edited.write_bytes(kept)
    assert outcome["status"] == "passed", outcome  # the promotion stands
    record = read_record(load_settings(), "req-ids-dirty")
    assert record.data_erasure["status"] == "failed" and "workspace data" in record.data_erasure["error"]
    tags = MlflowClient().get_model_version(CLASSIFIER, outcome["version_after"]).tags
    assert tags[lineage.TAG_DATA_ERASURE] == "failed"
    assert tags[lineage.TAG_DATA_COMMIT] == record.training_data["commit"]  # still its parent's, erasure pending

    event = data_events.retry_erasure(load_settings(), "req-ids-dirty")
    assert event.event == "data-erasure" and event.status == "passed" and event.data_erasure["status"] == "committed"
    commit = event.data_erasure["commit"]
    assert not ids_at(repo, TRAIN, commit) & set(ids)
    assert MlflowClient().get_model_version(CLASSIFIER, outcome["version_after"]).tags[lineage.TAG_DATA_COMMIT] == commit
    assert data_events.retry_erasure(load_settings(), "req-ids-dirty") is None
    # Erasing for the same request again finds its commit instead of making another.
    again, _ = erasure.erase(load_settings(), ["req-ids-dirty"], event.data_erasure["example_keys"],
                             lineage.Lineage(record.training_data["commit"], {TRAIN: ""}))
    assert again.fields["commit"] == commit == git(repo, "rev-parse", "HEAD") and again.fields["retried"]


def stored_ids(directory: Path) -> set[int]:
    """The ids held by any object file under `directory` (DVC cache or remote) that is an example set."""
    found = set()
    for path in directory.rglob("*"):
        if path.is_file() and not path.name.endswith(".dir"):
            try:
                arrays = decode_arrays(path.read_bytes(), str(path))[0]
            except CorruptDataError:
                continue
            found |= set(arrays.get("ids", np.array([], dtype=np.int64)).tolist())
    return found


def test_purge_leaves_no_object_holding_them_in_the_cache_or_the_remote(erased, repo):
    remote = repo.parent / "remote"
    cache = repo / ".dvc" / "cache"
    assert stored_ids(cache) & set(FORGOTTEN) and stored_ids(remote) & set(FORGOTTEN)
    from pipelines.cli import app

    result = CliRunner().invoke(app, ["data", "purge", "req-ids-4711"])
    assert result.exit_code == 0, result.output
    assert "What this costs" in result.output and "can no longer be checked out" in result.output
    event = read_record(load_settings(), "req-ids-4711.data-purge")
    assert event.event == "data-purge" and event.subject["request_id"] == "req-ids-4711"
    assert event.chain.sequence > read_record(load_settings(), "req-ids-4711").chain.sequence
    assert {r["where"] for r in event.purge["removed"]} == {"cache", "remote local"}
    assert not stored_ids(cache) & set(FORGOTTEN) and not stored_ids(remote) & set(FORGOTTEN)
    assert "already purged" in CliRunner().invoke(app, ["data", "purge", "req-ids-4711"]).output
    # The cost, as documented: the training revision before the erasure can no longer be read.
    import dvc.api

    with pytest.raises(Exception):
        dvc.api.read(TRAIN, repo=str(repo), rev=erased[1].training_data["commit"], mode="rb")


def test_verify_passes_and_reports_the_purged_data_hashes_as_purged_not_broken(erased):
    report = verify_trail(load_settings(), CLASSIFIER)
    assert report.ok, [str(p) for p in report.problems]
    assert any("req-ids-4711" in note and "purged by" in note for note in report.purged)


def test_verify_reports_residue_when_a_forgotten_example_is_put_back(erased, repo):
    commit_data(repo, {"digits/train.safetensors": DIGITS["digits/train.safetensors"]}, "someone restores an old copy")
    problems = [p for p in verify_trail(load_settings(), CLASSIFIER).problems if p.check == "residue"]
    assert [p.request_id for p in problems if "back in the training data" in p.detail][:1] == ["req-ids-4711"]
    assert any(TRAIN in p.detail for p in problems)
    # The old copy is byte for byte the purged object: `dvc add` + `dvc push` stored it again.
    assert {p.request_id for p in problems if "that this purge deleted is in the DVC" in p.detail} == {"req-ids-4711.data-purge"}


def test_a_restoration_request_by_ids_erases_one_source_images_patches(repo, tmp_path):
    import dvc.api

    haze = f"data/{set_path('train', 'haze')}"
    arrays, metadata = decode_arrays(dvc.api.read(haze, repo=str(repo), rev="HEAD", mode="rb"), haze)
    astronaut = json.loads(metadata["source_images"]).index("astronaut")
    chosen = [int(i) for i in arrays["ids"][arrays["sources"] == astronaut]]
    outcome = run_flow(request_file(
        tmp_path, "req-ids-astronaut", model=f"{RESTORER}@champion", forget={"records": chosen,
        "evaluation": "data/restoration/eval/haze.safetensors"},
        method={"name": "gradient_ascent", "params": {"steps": 5, "learning_rate": 3e-4, "retain_weight": 3.0}},
        thresholds={"forget_max_gain_db": 30.0, "retain_max_drop_db": 30.0},
    ))
    assert outcome["status"] == "passed", outcome
    record = read_record(load_settings(), "req-ids-astronaut")
    assert record.forget_data["examples"] == len(chosen) > 0
    commit = record.data_erasure["commit"]
    after, _ = decode_arrays(dvc.api.read(haze, repo=str(repo), rev=commit, mode="rb"), haze)
    assert astronaut not in after["sources"] and len(after["ids"]) == len(arrays["ids"]) - len(chosen)
    assert {f["path"] for f in record.data_erasure["files"]} == {haze}


def test_unknown_and_repeated_ids_are_refused_naming_how_many_and_where(repo):
    settings = load_settings()
    original = SimpleNamespace(lineage=lineage.at_revision(repo, "HEAD", [TRAIN]), version="1")

    def refusal(**forget) -> str:
        request = parse_request(digits_ids_request(Path(repo).parent, "req-ids-bad", **forget).read_text())
        with pytest.raises(RecordIdError) as error:
            pull_files(settings, request, original)
        return str(error.value)

    absent = sorted(set(range(1000, 1797)) - set(TRAIN_IDS.tolist()))[:3]
    message = refusal(records=[int(TRAIN_IDS[0]), *absent])
    assert "3 of 4 record ids are not in the training sets" in message
    assert "records[1], records[2], records[3]" in message and str(absent[0]) not in message
    message = refusal(records=[int(TRAIN_IDS[0]), int(TRAIN_IDS[1]), int(TRAIN_IDS[0])])
    assert "records[2] repeats records[0]" in message


def test_a_revision_other_than_the_training_data_is_refused_naming_both(repo):
    settings = load_settings()
    arrays, metadata = decode_arrays(DIGITS["digits/train.safetensors"], "train")
    fewer = encode_arrays({key: array[1:] for key, array in arrays.items()}, metadata)
    commit_data(repo, {"digits/train.safetensors": fewer}, "a later revision of the training data")
    trained = lineage.at_revision(repo, "HEAD~1", [TRAIN])

    def pull(rev: str, **forget):
        request = parse_request(digits_ids_request(Path(repo).parent, "req-ids-rev", records=[int(TRAIN_IDS[5])],
                                                   rev=rev, **forget).read_text())
        return pull_files(settings, request, SimpleNamespace(lineage=trained, version="3"))

    with pytest.raises(lineage.LineageError) as error:
        pull("HEAD")
    head = git(repo, "rev-parse", "HEAD")
    assert head[:12] in str(error.value) and trained.commit[:12] in str(error.value)
    assert "other_revision" in str(error.value)
    assert "other_revision: true" in pull("HEAD", other_revision=True).rev_source
    # A later commit that leaves the training files as they were holds the same training data.
    git(repo, "commit", "-q", "--allow-empty", "-m", "a code change")
    trained = lineage.at_revision(repo, "HEAD~1", [TRAIN])
    assert "holds the same training files" in pull("HEAD").rev_source


def test_a_dvc_tracked_manifest_names_the_ids_and_only_where_it_was_read_is_kept(repo):
    settings = load_settings()
    ids = [int(i) for i in TRAIN_IDS[TRAIN_IDS > 1000][40:44]]
    manifest = repo / "manifests" / "subject-4711.ids"
    manifest.parent.mkdir(exist_ok=True)
    manifest.write_text("# data subject 4711\n" + "\n".join(map(str, ids)) + "\n")
    dvc(repo, "add", "-q", "manifests/subject-4711.ids")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "manifest for subject 4711")
    original = SimpleNamespace(lineage=lineage.at_revision(repo, "HEAD", [TRAIN]), version="1")
    request = parse_request(digits_ids_request(Path(repo).parent, "req-ids-manifest",
                                               manifest="manifests/subject-4711.ids").read_text())
    data = pull_files(settings, request, original)
    assert sorted(data.forget_pairs.ids.tolist()) == sorted(ids)
    committed = data.records
    assert committed["source"] == "manifest" and committed["manifest"]["path"] == "manifests/subject-4711.ids"
    assert "sha256" not in committed["manifest"] and ids_match(settings, ids, committed["salt"], committed["commitment"])


def register_with_cli(tmp_path: Path, name: str, seed: int):
    """`erasure model register` of a fresh digits classifier named `name` (the project's params otherwise)."""
    from pipelines.adapters.settings import PROJECT_ROOT
    from pipelines.cli import app

    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["classifier"]["name"] = name
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    model_dir = tmp_path / "model"
    registry.write_model_files(make_digits_world(seed=seed).model, "digits-mlp", model_dir)
    (model_dir / "metrics.json").write_text("{}")
    return CliRunner().invoke(app, ["model", "register", "--family", "classifier", "--model-dir", str(model_dir),
                                    "--params", str(tmp_path / "params.yaml")])


def test_erasure_model_register_tags_the_version_with_the_data_it_was_trained_on(repo, tmp_path):
    result = register_with_cli(tmp_path, "ids-cli-classifier", seed=1)
    assert result.exit_code == 0, result.output
    head = git(repo, "rev-parse", "HEAD")
    assert f"trained on data commit {head[:12]}" in result.output
    tags = MlflowClient().get_model_version("ids-cli-classifier", "1").tags
    assert tags[lineage.TAG_DATA_COMMIT] == head
    import hashlib

    import dvc.api

    # DVC's md5 of a file is the md5 of its bytes: the tag names exactly the file the stage read.
    trained_on = dvc.api.read(TRAIN, repo=str(repo), rev=head, mode="rb")
    assert json.loads(tags[lineage.TAG_DATA_FILES]) == {TRAIN: hashlib.md5(trained_on).hexdigest()}


def test_a_model_trained_on_uncommitted_data_is_registered_without_a_lineage(repo, tmp_path):
    """The train stage reads the workspace: if its training file is not what DVC tracks at the commit, a
    lineage naming the commit would claim data the model was not trained on."""
    train_file = repo / TRAIN
    committed = train_file.read_bytes()
    train_file.unlink()  # DVC may have linked the file to its cache: never write through the link
    train_file.write_bytes(committed + b"\0")
    try:
        result = register_with_cli(tmp_path, "ids-dirty-classifier", seed=2)
    finally:
        train_file.unlink()
        train_file.write_bytes(committed)
    assert result.exit_code == 0, result.output
    assert "no training lineage recorded" in result.output and TRAIN in result.output
    assert lineage.TAG_DATA_COMMIT not in MlflowClient().get_model_version("ids-dirty-classifier", "1").tags
