"""Coalescing: pending requests for one model and method share one unlearning run and one promotion, and
each keeps its own verdict and audit record; a bad request in the group is refused alone."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from mlflow import MlflowClient

from pipelines.adapters import datastore
from pipelines.adapters.settings import load_settings
from pipelines.audit import chain, read_record
from pipelines.audit.verify import verify_trail
from pipelines.operations.coalesce import TAG_COALESCED
from pipelines.operations.inbox import inbox_flow
from tests.conftest import commit_data
from tests.pipeline.conftest import champion, quick_request, register_model
from unlearning.data.pairs import decode_arrays, encode_arrays
from unlearning.data.restoration import set_path

pytestmark = [pytest.mark.e2e]


def test_three_requests_for_one_model_are_unlearned_in_one_run_and_promoted_once(world, tiny_world, tmp_path, monkeypatch):
    model = "shared-restorer"
    register_model(model, tiny_world.fresh_model(), tmp_path / "base")
    haze, _ = decode_arrays(tiny_world.files[set_path("train", "haze")], "haze")
    shards = {f"restoration/train/haze-shard-{n}.safetensors": {k: v[n::3] for k, v in haze.items()} for n in range(3)}
    rev = commit_data(world, {path: encode_arrays(arrays, {"task": "restoration"}) for path, arrays in shards.items()}, "shards")
    pending = tmp_path / "inbox" / "pending"
    pending.mkdir(parents=True)
    group = [f"req-group-{n}" for n in range(3)]
    for n, request_id in enumerate(group):
        quick_request(pending, request_id, model, forget__path=f"data/restoration/train/haze-shard-{n}.safetensors", forget__rev=rev)
    quick_request(pending, "req-group-bad", model, forget__path="data/restoration/train/smog.safetensors")

    reads = Counter()
    fetch = datastore.RevisionReader._fetch
    monkeypatch.setattr(datastore.RevisionReader, "_fetch", lambda reader, path: reads.update([path]) or fetch(reader, path))

    outcomes = {o["request_id"]: o for o in inbox_flow(str(tmp_path / "inbox"))}

    # The group's files are read once each (the shared retain and evaluation sets too); the bad request's
    # missing file once in the group, once when it is refused alone.
    assert set(reads.values()) == {1} | {reads["data/restoration/train/smog.safetensors"]} and len(reads) == 9, reads
    assert reads["data/restoration/train/smog.safetensors"] == 2

    assert [outcomes[r]["status"] for r in group] == ["passed"] * 3, outcomes
    assert {(outcomes[r]["version_before"], outcomes[r]["version_after"]) for r in group} == {("1", "2")}
    assert sorted(int(v.version) for v in MlflowClient().search_model_versions(f"name = '{model}'")) == [1, 2]
    assert champion(model) == "2"
    assert MlflowClient().get_model_version(model, "2").tags[TAG_COALESCED] == ",".join(group)
    settings = load_settings()
    records = [read_record(settings, r) for r in group]
    assert {record.coalesced.shared_run_id for record in records} == {outcomes[group[0]]["mlflow_run_id"]}
    assert all(record.coalesced.requests == group and record.coalesced.forget_examples == 128 for record in records)
    assert [record.forget_data["examples"] for record in records] == [43, 43, 42]
    assert len({record.mlflow_run_id for record in records}) == 3, "each request keeps its own audit run"
    # The bad request was refused alone, with its own record, after the group.
    assert outcomes["req-group-bad"]["status"] == "rejected" and outcomes["req-group-bad"]["stage"] == "pull data"
    assert read_record(settings, "req-group-bad").coalesced is None
    ledger = chain.read_ledger(chain.ledger_path(settings, model))
    assert [entry.request_id for entry in ledger] == [*group, "req-group-bad"]
    report = verify_trail(settings, model=model)
    assert report.ok, [str(problem) for problem in report.problems]


def test_a_member_whose_forget_set_fails_validation_is_refused_alone_and_the_rest_share_one_run(world, tiny_world, tmp_path):
    model = "validated-restorer"
    register_model(model, tiny_world.fresh_model(), tmp_path / "base")
    haze, _ = decode_arrays(tiny_world.files[set_path("train", "haze")], "haze")
    evaluation, _ = decode_arrays(tiny_world.files[set_path("eval", "haze")], "haze")
    shards = {f"restoration/train/haze-part-{n}.safetensors": {k: v[n::3] for k, v in haze.items()} for n in range(2)}
    # The third member's forget set also holds 3 held-out evaluation examples: Great Expectations refuses it.
    shards["restoration/train/haze-part-leaky.safetensors"] = {k: np.concatenate([v[2::3], evaluation[k][:3]]) for k, v in haze.items()}
    rev = commit_data(world, {path: encode_arrays(arrays, {"task": "restoration"}) for path, arrays in shards.items()}, "parts")
    pending = tmp_path / "inbox" / "pending"
    pending.mkdir(parents=True)
    for request_id, part in (("req-part-0", "0"), ("req-part-leaky", "leaky"), ("req-part-1", "1")):
        quick_request(pending, request_id, model, forget__path=f"data/restoration/train/haze-part-{part}.safetensors", forget__rev=rev)

    outcomes = {o["request_id"]: o for o in inbox_flow(str(tmp_path / "inbox"))}

    settings = load_settings()
    good = [read_record(settings, r) for r in ("req-part-0", "req-part-1")]
    assert [outcomes[r.request_id]["status"] for r in good] == ["passed", "passed"], outcomes
    assert all(r.coalesced is not None and r.coalesced.requests == ["req-part-0", "req-part-1"] for r in good)
    assert all(r.validation["success"] and not r.validation["failures"] for r in good)
    leaky = read_record(settings, "req-part-leaky")
    assert outcomes["req-part-leaky"]["status"] == "rejected" and leaky.failed_stage == "validate" and leaky.coalesced is None
    assert "not_be_in_set(column=input_sha256): unexpected 3" in leaky.error
    assert champion(model) == "2"
