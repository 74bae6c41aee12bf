"""`erasure audit reproduce`: a recorded unlearning run re-executed from its record, bit-exact on the CPU, and
refused, naming the input, when the base weights or a data revision are no longer the recorded ones."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.audit import read_record
from pipelines.audit.reproduce import ReproductionError, reproduce
from pipelines.settings import load_settings
from tests.conftest import commit_data
from tests.pipeline.conftest import register_model, request_file, run_flow
from unlearning.data.pairs import decode_arrays, encode_arrays
from unlearning.data.restoration import set_path

pytestmark = [pytest.mark.e2e]

MODEL = "reproduced-restorer"
FORGET = "restoration/train/haze-reproduce.safetensors"
REQUEST_ID = "req-reproduce"


def forget_file(tiny_world, examples: slice) -> bytes:
    """Some of the tiny world's haze pairs as a forget set file of its own (its own DVC object)."""
    arrays, metadata = decode_arrays(tiny_world.files[set_path("train", "haze")], "haze")
    return encode_arrays({key: value[examples] for key, value in arrays.items()}, metadata)


@pytest.fixture(scope="module")
def recorded(world, tiny_world, tmp_path_factory):
    """A passed request on a model of its own, forget set read at `main`; then `main` moves on."""
    directory = tmp_path_factory.mktemp("reproduce")
    register_model(MODEL, tiny_world.fresh_model(), directory / "base")
    commit_data(world, {FORGET: forget_file(tiny_world, slice(0, 96))}, "a forget set of its own")
    outcome = run_flow(request_file(directory, REQUEST_ID, model=f"{MODEL}@champion",
                                    forget__path=f"data/{FORGET}", forget__rev="main"))
    assert outcome["status"] == "passed", outcome
    # The request said `rev: main`; main now holds other bytes at that path. The reproduction must read the commit.
    commit_data(world, {FORGET: forget_file(tiny_world, slice(32, 128))}, "the forget set changed after the request")
    return read_record(load_settings(), REQUEST_ID)


def test_record_holds_what_the_reproduction_needs(recorded):
    section = recorded.reproduction
    assert section["weights_sha256"] == recorded.model.weights_sha256_after
    assert section["request"]["request_id"] == REQUEST_ID and section["request_withheld"] is None
    assert section["numerics"]["device"] == "cpu" and section["numerics"]["threads"] == 1
    assert section["numerics"]["capability"] in ("DEFAULT", "AVX2", "AVX512")


def test_reproduction_is_bit_exact_although_the_revision_moved(recorded):
    result = reproduce(load_settings(), REQUEST_ID)
    assert result.exact_expected and result.bit_exact and result.matches
    assert result.reproduced_sha256 == recorded.model.weights_sha256_after
    assert any("forget_data" in check and "as recorded" in check for check in result.checks)


def test_another_seed_is_not_reproduced(recorded, monkeypatch):
    # The negative control: the same inputs with another seed give other weights, where exact was expected.
    from pipelines.audit import store

    edited = recorded.model_copy(deep=True)
    edited.reproduction["request"]["method"]["params"]["seed"] = 1
    monkeypatch.setattr(store, "read_record", lambda settings, request_id: edited)
    monkeypatch.setattr("pipelines.audit.reproduce.read_record", lambda settings, request_id: edited)
    result = reproduce(load_settings(), REQUEST_ID)
    assert result.exact_expected and not result.bit_exact and not result.matches


def registered_weights_file(sha256: str) -> Path:
    artifacts = load_settings().artifact_root
    return next(path for path in artifacts.rglob("weights.safetensors") if hashlib.sha256(path.read_bytes()).hexdigest() == sha256)


def test_base_weights_altered_by_one_byte_are_refused_naming_the_base(recorded):
    weights = registered_weights_file(recorded.model.weights_sha256_before)
    original = weights.read_bytes()
    altered = bytearray(original)
    altered[-1] ^= 0x01
    try:
        weights.write_bytes(bytes(altered))
        with pytest.raises(ReproductionError, match=rf"base model: .*{MODEL} version {recorded.model.version_before}"):
            reproduce(load_settings(), REQUEST_ID)
    finally:
        weights.write_bytes(original)


def test_cli_reproduces_in_a_fresh_process_with_the_recorded_numerics(recorded):
    # The auditor's command, in its own process: it restarts itself in the recorded numerics.
    environment = {key: value for key, value in os.environ.items() if key != "ATEN_CPU_CAPABILITY"}
    done = subprocess.run([str(Path(sys.executable).parent / "erasure"), "audit", "reproduce", REQUEST_ID],
                          capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "reproduced: bit-exact" in done.stdout
    assert recorded.model.weights_sha256_after in done.stdout


def test_purged_revision_is_named(recorded, world):
    # Last: deletes the forget set's objects from the DVC cache and remote (what `erasure data purge` does).
    md5 = recorded.forget_data["dvc_md5"]
    removed = [path for store in (world / ".dvc" / "cache", world.parent / f"{world.name}-remote")
               for path in store.rglob(md5[2:]) if path.parent.name == md5[:2]]
    assert removed, "the forget set's object is in the cache and the remote"
    for path in removed:
        path.unlink()
    (world / "data" / FORGET).unlink()
    with pytest.raises(ReproductionError, match=rf"input no longer available: .*{FORGET}"):
        reproduce(load_settings(), REQUEST_ID)
