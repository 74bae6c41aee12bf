"""Identity unlearning (GUIDE) through the whole pipeline: a registered digits GAN stops reproducing one
held-out digit instance named by a DVC path, with its encoder, two identity networks and feature network
registered beside it; MLflow, Prefect, DVC, GX and ONNX all real. The models are the tiny seeded worlds of
tests/gan_world.py and tests/identity_world.py. The image is personal data: the privacy test scans every
place the pipeline writes for it.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from pipelines.adapters import registry
from pipelines.adapters.settings import load_settings
from pipelines.audit import read_record
from pipelines.audit.store import local_record_path
from pipelines.audit.verify import verify_trail
from tests.conftest import commit_data
from tests.gan_world import CPU
from tests.identity_world import shared_identity_world
from tests.pipeline.conftest import register_model, request_file, run_flow
from unlearning.data.digits import DigitsDataConfig
from unlearning.data.identities import OTHERS_PATH, build_identity_sets, identity_path
from unlearning.data.pairs import decode_arrays
from unlearning.identity_metrics import reconstructions

pytestmark = [pytest.mark.e2e]

MODEL, FEATURES, ENCODER = "id-digits-generator", "id-digits-feature-net", "id-digits-gan-encoder"
LOSS_NET, VERIFIER = "id-digits-identity-net", "id-digits-identity-verifier"
IDENTITY = identity_path(0)


@pytest.fixture(scope="module")
def identity_world(tmp_path_factory):
    return shared_identity_world(tmp_path_factory)


@pytest.fixture(scope="module")
def generator(world, identity_world, tmp_path_factory):
    gan = identity_world.gan
    for name, model, architecture in ((FEATURES, gan.feature_net, "digits-feature-net"),
                                      (ENCODER, identity_world.encoder, "digits-gan-encoder"),
                                      (LOSS_NET, identity_world.identity_net, "digits-identity-net"),
                                      (VERIFIER, identity_world.verifier, "digits-identity-net"),
                                      (MODEL, gan.gan, "digits-gan")):
        version = register_model(name, model, tmp_path_factory.mktemp(name), architecture)
    MlflowClient().set_registered_model_alias(MODEL, "original", version)
    files = build_identity_sets(DigitsDataConfig())
    commit_data(world, files, "identities")
    return files


def identity_request(tmp_path, request_id: str, model: str = f"{MODEL}@champion", **overrides):
    fields = {
        "model": model,
        "forget": {
            "identity": {"path": f"data/{IDENTITY}", "rev": "main"},
            "helpers": {"encoder": f"{ENCODER}@champion", "identity_net": f"{LOSS_NET}@champion",
                        "verifier": f"{VERIFIER}@champion"},
            "others": {"path": f"data/{OTHERS_PATH}", "rev": "main"},
            "views": {"count": 8, "seed": 0},
            "quality": {"feature_network": f"{FEATURES}@champion", "real": "data/digits/test.safetensors",
                        "rev": "main", "latents": 1000, "seed": 1},
        },
        "retain": None,
        "method": {"name": "guide", "params": {}},
        # guide on identity-0 with this world's networks (measured over seeds 0-2 x {default, avx2, avx512},
        # the flow's data rebuilt with each seed): reduction 0.819-1.236 (>= 0.7); views' reduction 0.115-1.787
        # (>= 0.5: fails on seed 1, default and seed 2, avx2/avx512); others' mean drop -0.002 to 0.075 (<= 0.12);
        # worst 0.111-0.465 (<= 0.5; 0.465 on seed 0, default); FID_pre 0.042-0.215 (<= 1.0); the collapse
        # check (default 0.1) fails on seed 1, avx2/avx512 (+0.107-0.119). It passes on seed 0 with all three.
        "thresholds": {"identity_min_reduction": 0.7, "views_min_reduction": 0.5, "others_max_mean_drop": 0.12,
                       "others_max_drop": 0.5, "fid_pre_max": 1.0},
    }
    return request_file(tmp_path, request_id, **{**fields, **overrides})


def champion() -> str:
    return registry.alias_version(load_settings(), MODEL, "champion")


def test_identity_request_promotes_a_version_that_no_longer_reproduces_the_identity(generator, tmp_path):
    before = champion()
    outcome = run_flow(identity_request(tmp_path, "req-id-forget"))
    assert outcome["status"] == "passed", outcome
    assert int(champion()) == int(before) + 1
    record = read_record(load_settings(), "req-id-forget")
    metrics = {m.name: m.value for m in record.metrics}
    # measured over seeds 0-2 x {default, avx2, avx512}: before 0.481-0.942, bound 0.4; after / before -0.236 to
    # 0.181, bound 0.3; FID_pre 0.042-0.215, bound 1.0
    assert metrics["before.identity_similarity"] > 0.4
    assert metrics["after.identity_similarity"] <= 0.3 * metrics["before.identity_similarity"]
    assert metrics["fid_pre"] <= 1.0
    assert record.unlearning["task"] == "identity"
    assert record.unlearning["distance_ratio"] == 1.0 and record.unlearning["target_distance"] > 0
    assert "LPIPS" in record.unlearning["perceptual_distance"]
    assert record.forget_data["path"] == f"data/{IDENTITY}" and record.forget_data["examples"] == 1
    assert record.forget_data["size_bytes"] == len(generator[IDENTITY])
    assert record.evaluation_data[1]["helpers"]["verifier"]["name"] == VERIFIER
    assert record.export["parity_passed"]
    assert verify_trail(load_settings(), MODEL).ok


def test_the_baseline_is_rejected_and_the_alias_stays(generator, tmp_path):
    """Negative control: GUIDE's baseline (w_avg, local loss only) changes the other identities and the
    generator too much."""
    # measured over seeds 0-2 x {default, avx2, avx512}: FID_pre 2.11-6.86 against fid_pre_max 1.0: rejected on all
    # nine (the others' mean drop fails on seven of them, FID vs real on eight)
    before = champion()
    outcome = run_flow(identity_request(tmp_path, "req-id-baseline", model=f"{MODEL}@original",
                                        method={"name": "guide_baseline", "params": {}}))
    assert outcome["status"] == "rejected" and outcome["stage"] == "verify", outcome
    assert "quality.fid_pre" in outcome["error"]
    assert champion() == before


def test_an_identity_the_generator_does_not_reproduce_is_refused_before_unlearning(generator, tmp_path):
    """Nothing to erase: asking for a higher similarity before than this world's identity has (two of the
    deployed test identities are below 0 there) refuses at validate, unchanged."""
    # measured over seeds 0-2 x {default, avx2, avx512}: the identity's similarity before is 0.481-0.942; floor 0.99
    before = champion()
    thresholds = {"identity_min_reduction": 0.7, "identity_min_similarity": 0.99}
    outcome = run_flow(identity_request(tmp_path, "req-id-nothing", model=f"{MODEL}@original", thresholds=thresholds))
    assert outcome["status"] == "rejected" and outcome["stage"] == "validate", outcome
    assert "does not reproduce this identity" in outcome["error"] and "nothing to erase" in outcome["error"]
    assert read_record(load_settings(), "req-id-nothing").unlearning.get("steps") is None
    assert champion() == before


def test_a_feature_method_for_an_identity_request_is_refused(generator, tmp_path):
    outcome = run_flow(identity_request(tmp_path, "req-id-wrong-method", model=f"{MODEL}@original",
                                        method={"name": "adapt_then_unlearn", "params": {}}))
    assert outcome["status"] == "rejected", outcome
    assert "does not apply to identity" in outcome["error"]


def test_the_verifier_may_not_be_the_loss_network(generator, tmp_path):
    request = identity_request(tmp_path, "req-id-same-net")
    request.write_text(request.read_text().replace(f"verifier: {VERIFIER}@champion", f"verifier: {LOSS_NET}@champion"))
    outcome = run_flow(request)
    assert outcome["status"] == "rejected" and outcome["stage"] == "pull data", outcome
    assert "forget.helpers.verifier" in outcome["error"]


def _needles(generator, identity_world) -> dict[str, bytes]:
    """What must appear nowhere: the file, the pixels in every encoding a writer might use, and the
    generator's reconstruction of the image before unlearning."""
    raw = generator[IDENTITY]
    pixels = decode_arrays(raw, IDENTITY)[0]["inputs"].astype(np.float32).reshape(64)
    image = torch.from_numpy(pixels).reshape(1, 1, 8, 8)
    reconstruction = reconstructions(identity_world.gan.gan, identity_world.encoder, image, CPU).numpy().reshape(64)
    as_uint8 = (pixels * 255).round().astype(np.uint8)
    needles = {
        "file bytes": raw[-256:],
        "file base64": base64.b64encode(raw)[:64],
        "float32 pixels": pixels.tobytes(),
        "float32 pixels base64": base64.b64encode(pixels.tobytes())[:40],
        "float64 pixels": pixels.astype(np.float64).tobytes(),
        "uint8 pixels": as_uint8.tobytes(),
        "uint8 pixels base64": base64.b64encode(as_uint8.tobytes())[:40],
        "pixel list (json)": json.dumps(pixels.tolist())[:120].encode(),
        "pixel list (repr)": repr(pixels.tolist())[:120].encode(),
        "pixel array (numpy str)": str(pixels)[:80].encode(),
        "reconstruction float32": reconstruction.tobytes(),
        "reconstruction list": json.dumps([round(float(v), 4) for v in reconstruction])[:80].encode(),
    }
    return needles


def _sequences(generator, identity_world) -> dict[str, np.ndarray]:
    """The image's pixel values however a writer might print them (any separator, indentation or scale),
    and the reconstruction before unlearning."""
    pixels = decode_arrays(generator[IDENTITY], IDENTITY)[0]["inputs"].astype(np.float64).reshape(64)
    image = torch.from_numpy(pixels).float().reshape(1, 1, 8, 8)
    reconstruction = reconstructions(identity_world.gan.gan, identity_world.encoder, image, CPU).numpy().reshape(64)
    return {"pixels": pixels, "pixels x255": np.round(pixels * 255), "pixels x16": np.round(pixels * 16),
            "reconstruction": reconstruction.astype(np.float64)}


NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _holds_sequence(numbers: np.ndarray, sequence: np.ndarray) -> bool:
    """Whether `sequence` occurs in `numbers` as consecutive values (to 1e-4), however it was printed."""
    if len(numbers) < len(sequence):
        return False
    windows = np.lib.stride_tricks.sliding_window_view(numbers, len(sequence))
    return bool((np.abs(windows - sequence).max(axis=1) < 1e-4).any())


def _scan(blob: bytes, needles: dict[str, bytes], where: str, sequences: dict[str, np.ndarray] | None = None) -> list[str]:
    found = [f"{name} in {where}" for name, needle in needles.items() if needle in blob]
    numbers = np.array([float(n) for n in NUMBER.findall(blob)]) if sequences else np.zeros(0)
    return found + [f"{name} (as printed numbers) in {where}" for name, sequence in (sequences or {}).items()
                    if _holds_sequence(numbers, sequence)]


def test_the_identity_image_appears_in_no_record_report_or_mlflow_entry(generator, identity_world, tmp_path):
    from pipelines.audit.certificate import write_certificate
    from pipelines.audit.report import write_report

    settings = load_settings()
    assert run_flow(identity_request(tmp_path, "req-id-forget"))["status"] == "passed"  # replayed if run above
    needles, sequences = _needles(generator, identity_world), _sequences(generator, identity_world)
    found = []
    found += _scan(local_record_path(settings, "req-id-forget").read_bytes(), needles, "the audit record", sequences)
    report = write_report(settings, "req-id-forget", tmp_path / "report")
    found += _scan(report.read_bytes(), needles, "the report", sequences)
    assert "data:image/png;base64," not in report.read_text()  # no figure at all: none can show the image
    found += _scan(write_certificate(settings, "req-id-forget", tmp_path / "certificate").read_bytes(), needles,
                   "the certificate", sequences)
    client = MlflowClient()
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            text = json.dumps({"params": run.data.params, "tags": run.data.tags, "metrics": run.data.metrics}).encode()
            found += _scan(text, needles, f"run {run.info.run_id} params/tags/metrics", sequences)
            pending = [item for item in client.list_artifacts(run.info.run_id)]
            while pending:
                item = pending.pop()
                if item.is_dir:
                    pending += client.list_artifacts(run.info.run_id, item.path)
                    continue
                local = client.download_artifacts(run.info.run_id, item.path, str(tmp_path / "artifacts"))
                blob = open(local, "rb").read()
                found += _scan(blob, needles, f"artifact {item.path}", sequences if _is_text(blob) else None)
    for version in client.search_model_versions(f"name = '{MODEL}'"):
        found += _scan(json.dumps({"tags": version.tags, "description": version.description}).encode(), needles,
                       f"{MODEL} v{version.version}", sequences)
    # And everything else under the pipeline's home (Prefect's persisted results included); the DVC data
    # repository, where the requester put the image, lives elsewhere.
    for path in settings.home.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            found += _scan(blob, needles, str(path.relative_to(settings.home)), sequences if _is_text(blob) else None)
    assert found == []


def test_the_privacy_scan_finds_the_image_wherever_it_is_printed(generator, identity_world):
    """The scan above can fail: the image as a file, as an indented JSON list, as uint8s in an HTML table."""
    needles, sequences = _needles(generator, identity_world), _sequences(generator, identity_world)
    pixels = sequences["pixels"]
    assert _scan(generator[IDENTITY], needles, "the file")
    assert _scan(json.dumps({"leak": pixels.tolist()}, indent=2).encode(), needles, "a record", sequences)
    table = "".join(f"<td>{int(v)}</td>" for v in sequences["pixels x255"]).encode()
    assert _scan(b"<table>" + table + b"</table>", needles, "a report", sequences)
    assert not _scan(json.dumps({"thresholds": [0.7, 0.5, 0.12]}).encode(), needles, "a clean record", sequences)


def _is_text(blob: bytes) -> bool:
    return b"\x00" not in blob[:4096]
