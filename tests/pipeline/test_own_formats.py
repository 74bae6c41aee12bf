"""Requests on data in the formats people keep, through the real flow: a digits classifier forgets every 8
named as a Parquet table and as a folder of PNGs (one folder per class); broken tables and image folders
are rejected at `pull data` naming the file (and the column), with an audit record and no promotion."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.adapters import registry
from pipelines.adapters.settings import load_settings
from pipelines.audit import read_record
from tests.conftest import commit_data
from tests.digits_world import FORGET_CLASS, make_digits_world
from tests.pipeline.conftest import champion, register_model, request_file, run_flow
from unlearning.data.digits import DigitsDataConfig, build_digits_sets, set_path
from unlearning.data.pairs import decode_arrays
from unlearning.data.restoration import set_path as restoration_set_path

pytestmark = [pytest.mark.e2e]

TABLE_MODEL, IMAGE_MODEL = "formats-table-classifier", "formats-image-classifier"
TABLE = {"label": "target", "id": "record_id"}
METHOD = {"name": "gradient_ascent",
          "params": {"bound": "do_nothing", "steps": 60, "learning_rate": 1e-3, "batch_size": 32, "retain_weight": 1.0}}
THRESHOLDS = {"forget_max_accuracy": 0.05, "test_max_drop": 0.03}
EIGHTS_IN_TRAIN = 122  # the 70/30 split of tests/digits_world.py (seed 0)


def parquet(arrays: dict[str, np.ndarray], drop: str | None = None) -> bytes:
    columns = {f"f{i}": arrays["inputs"][:, i] for i in range(arrays["inputs"].shape[1])}
    columns |= {"target": arrays["targets"], "record_id": arrays["ids"]}
    columns.pop(drop, None)
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folder(name: str, arrays: dict[str, np.ndarray], per_class: int | None = None) -> dict[str, bytes]:
    """`images/NAME/K/ID.png`: each digit as an 8x8 grey PNG, at most `per_class` of each class."""
    files, counts = {}, {}
    for features, label, record_id in zip(arrays["inputs"], arrays["targets"], arrays["ids"]):
        counts[label] = counts.get(label, 0) + 1
        if per_class is None or counts[label] <= per_class:
            pixels = np.round(features.reshape(8, 8) * 255).astype(np.uint8)
            files[f"images/{name}/{label}/{record_id:04d}.png"] = png(pixels)
    return files


def pairs_folder(name: str, haze: dict[str, np.ndarray], count: int = 3) -> dict[str, bytes]:
    def rgb(array: np.ndarray) -> bytes:
        return png(np.ascontiguousarray(array.transpose(1, 2, 0)))

    return {**{f"pairs/{name}/degraded/{i}.png": rgb(haze["inputs"][i]) for i in range(count)},
            **{f"pairs/{name}/clean/{i}.png": rgb(haze["targets"][i]) for i in range(count)}}


@pytest.fixture(scope="module")
def formats(world, tiny_world, tmp_path_factory):
    """One commit of every set the module reads, and a classifier registered for each format: its rev."""
    digits = build_digits_sets(DigitsDataConfig())
    train, test = (decode_arrays(digits[set_path(split)], split)[0] for split in ("train", "test"))

    def of_class(arrays):
        chosen = arrays["targets"] == FORGET_CLASS
        return {key: value[chosen] for key, value in arrays.items()}

    nan_eights = of_class(train)
    nan_eights["inputs"] = nan_eights["inputs"].copy()
    nan_eights["inputs"][:3, 10] = np.nan
    repeated = of_class(train)
    repeated["ids"] = repeated["ids"].copy()
    repeated["ids"][1] = repeated["ids"][0]
    files = {
        "tables/train-8.parquet": parquet(of_class(train)), "tables/test-8.parquet": parquet(of_class(test)),
        "tables/train.parquet": parquet(train), "tables/test.parquet": parquet(test),
        "tables/no-label.parquet": parquet(of_class(train), drop="target"),
        "tables/nan.parquet": parquet(nan_eights), "tables/repeated-id.parquet": parquet(repeated),
        **image_folder("train-8", of_class(train)), **image_folder("test-8", of_class(test)),
        **image_folder("train", train, per_class=30), **image_folder("test", test, per_class=15),
    }
    haze = decode_arrays(tiny_world.files[restoration_set_path("train", "haze")], "haze")[0]
    missing = pairs_folder("missing", haze)
    del missing["pairs/missing/clean/2.png"]
    corrupt = pairs_folder("corrupt", haze)
    corrupt["pairs/corrupt/clean/1.png"] = corrupt["pairs/corrupt/clean/1.png"][:60]
    mixed = pairs_folder("mixed", haze)
    mixed["pairs/mixed/clean/2.png"] = png(np.zeros((8, 8, 3), np.uint8))
    rev = commit_data(world, files | missing | corrupt | mixed, "sets as tables and image folders")
    model = make_digits_world(seed=0).model
    for name in (TABLE_MODEL, IMAGE_MODEL):
        register_model(name, model, tmp_path_factory.mktemp(name), "digits-mlp")
    return rev, files


def digits_request(tmp_path, request_id: str, model: str, rev: str, forget: dict, retain: dict, **overrides):
    return request_file(tmp_path, request_id, model=f"{model}@champion", forget={"rev": rev, **forget},
                        retain=retain, method=METHOD, thresholds=THRESHOLDS, **overrides)


def test_a_classifier_forgets_a_class_named_as_parquet_tables(formats, tmp_path):
    rev, files = formats
    before = champion(TABLE_MODEL)
    outcome = run_flow(digits_request(
        tmp_path, "req-formats-parquet", TABLE_MODEL, rev,
        {"path": "data/tables/train-8.parquet", "evaluation": "data/tables/test-8.parquet", "table": TABLE},
        {"paths": ["data/tables/train.parquet"], "evaluation": ["data/tables/test.parquet"]}))
    assert outcome["status"] == "passed", outcome
    assert champion(TABLE_MODEL) == outcome["version_after"] != before
    record = read_record(load_settings(), "req-formats-parquet")
    # Hashed the same way as a safetensors set: the file's own bytes, and the count decoded from it.
    assert record.forget_data["sha256"] == hashlib.sha256(files["tables/train-8.parquet"]).hexdigest()
    assert record.forget_data["dvc_md5"] and record.forget_data["examples"] == EIGHTS_IN_TRAIN
    assert record.unlearning["retain_examples_excluded_as_forget"] == EIGHTS_IN_TRAIN


def test_a_classifier_forgets_a_class_named_as_image_folders(formats, tmp_path):
    rev, _ = formats
    before = champion(IMAGE_MODEL)
    outcome = run_flow(digits_request(
        tmp_path, "req-formats-images", IMAGE_MODEL, rev,
        {"path": "data/images/train-8", "evaluation": "data/images/test-8"},
        {"paths": ["data/images/train"], "evaluation": ["data/images/test"]}))
    assert outcome["status"] == "passed", outcome
    assert champion(IMAGE_MODEL) == outcome["version_after"] != before
    record = read_record(load_settings(), "req-formats-images")
    assert record.forget_data["files"] == record.forget_data["examples"] == EIGHTS_IN_TRAIN
    assert record.forget_data["dvc_md5"].endswith(".dir") and len(record.forget_data["sha256"]) == 64
    served = registry.load_by_alias(load_settings(), IMAGE_MODEL, "champion")
    assert served.version == outcome["version_after"]


def assert_rejected_at_pull_data(outcome: dict, model: str, before: str, *named: str) -> None:
    assert outcome["status"] == "rejected" and outcome["stage"] == "pull data", outcome
    assert all(text in outcome["error"] for text in named), outcome["error"]
    record = read_record(load_settings(), outcome["request_id"])
    assert record.status == "rejected" and record.failed_stage == "pull data"
    assert all(text in record.error for text in named)
    assert champion(model) == before


@pytest.mark.parametrize("table, named", [
    ("no-label", ["data/tables/no-label.parquet", "expect_column_to_exist(column=target): missing"]),
    ("nan", ["data/tables/nan.parquet", "expect_column_values_to_not_be_null(column=f10): unexpected 3"]),
    ("repeated-id", ["data/tables/repeated-id.parquet", "expect_column_values_to_be_unique(column=record_id): unexpected 2"]),
], ids=["missing-column", "nan", "duplicated-id"])
def test_a_broken_table_is_rejected_naming_the_file_and_the_column(formats, tmp_path, table, named):
    rev, _ = formats
    before = champion(TABLE_MODEL)
    outcome = run_flow(digits_request(
        tmp_path, f"req-formats-{table}", TABLE_MODEL, rev,
        {"path": f"data/tables/{table}.parquet", "evaluation": "data/tables/test-8.parquet", "table": TABLE},
        {"paths": ["data/tables/train.parquet"], "evaluation": ["data/tables/test.parquet"]}))
    assert_rejected_at_pull_data(outcome, TABLE_MODEL, before, *named)


@pytest.mark.parametrize("folder, named", [
    ("missing", ["data/pairs/missing: degraded/2.png has no partner clean/2.png"]),
    ("corrupt", ["data/pairs/corrupt/clean/1.png: not a decodable image"]),
    ("mixed", ["data/pairs/mixed: images of 2 sizes", "degraded/0.png: 3x16x16", "clean/2.png: 3x8x8"]),
], ids=["missing-partner", "corrupt-png", "mixed-sizes"])
def test_a_broken_image_folder_is_rejected_naming_the_file(formats, tmp_path, folder, named):
    rev, _ = formats
    before = champion()
    outcome = run_flow(request_file(tmp_path, f"req-formats-{folder}", forget__path=f"data/pairs/{folder}",
                                    forget__rev=rev))
    assert_rejected_at_pull_data(outcome, "tiny-restorer", before, *named)
