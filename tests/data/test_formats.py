"""Sets in the formats people keep: tables and image folders decode to the arrays a safetensors set gives,
and each broken one is refused naming the file (and the column), never a value."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.adapters.datastore import FetchedDirectory, FetchedFile, RevisionReader
from pipelines.adapters.validation import TableValidationError
from pipelines.kinds.formats import DataFormatError, TableColumns, decode_set
from tests.conftest import commit_data, init_data_repo
from unlearning.data.pairs import CorruptDataError, PairSet, encode_arrays

COLUMNS = TableColumns(label="target", id="record_id")


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def grey(value: int, size=(4, 4)) -> bytes:
    return png(np.full(size, value, dtype=np.uint8))


def parquet(**columns) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def table_file(raw: bytes, path: str = "data/forget.parquet") -> FetchedFile:
    return FetchedFile(path, "main", "c" * 40, "", "", len(raw), raw)


def folder(files: dict[str, bytes], path: str = "data/forget") -> FetchedDirectory:
    return FetchedDirectory(path, "main", "c" * 40, "", "", 0, b"", files)


def features_table(**overrides) -> bytes:
    columns = {"f0": [0.0, 0.5, 1.0], "f1": [1.0, 0.25, 0.0], "target": [8, 8, 3], "record_id": [10, 11, 12]}
    return parquet(**{**columns, **overrides})


def test_a_parquet_table_gives_features_labels_and_ids():
    arrays = decode_set(table_file(features_table()), COLUMNS)
    assert arrays["inputs"].dtype == np.float32 and arrays["inputs"].shape == (3, 2)
    assert arrays["targets"].tolist() == [8, 8, 3] and arrays["targets"].dtype == np.int64
    assert arrays["ids"].tolist() == [10, 11, 12]


def test_named_features_are_read_in_the_named_order():
    arrays = decode_set(table_file(features_table()), TableColumns(label="target", features=["f1", "f0"]))
    assert arrays["inputs"][0].tolist() == [1.0, 0.0] and "ids" not in arrays


def test_a_csv_table_reads_like_the_parquet_one():
    raw = b"f0,f1,target,record_id\n0.0,1.0,8,10\n0.5,0.25,8,11\n1.0,0.0,3,12\n"
    csv = decode_set(table_file(raw, "data/forget.csv"), COLUMNS)
    parquet_arrays = decode_set(table_file(features_table()), COLUMNS)
    assert all(np.array_equal(csv[key], parquet_arrays[key]) for key in ("inputs", "targets", "ids"))


def test_a_table_without_column_options_is_refused_naming_the_option():
    with pytest.raises(DataFormatError, match=r"data/forget.parquet: a table; name its columns in forget.table"):
        decode_set(table_file(features_table()), None)


def test_a_missing_column_is_refused_naming_the_column_and_the_file():
    raw = parquet(f0=[0.0, 1.0], record_id=[1, 2])
    with pytest.raises(TableValidationError) as error:
        decode_set(table_file(raw), COLUMNS)
    assert "data/forget.parquet" in str(error.value)
    assert "expect_column_to_exist(column=target): missing" in str(error.value)


def test_nan_is_refused_naming_the_column_and_the_count_not_the_values():
    raw = features_table(f1=[0.123456, float("nan"), float("nan")])
    with pytest.raises(TableValidationError) as error:
        decode_set(table_file(raw), COLUMNS)
    assert "expect_column_values_to_not_be_null(column=f1): unexpected 2" in str(error.value)
    assert "0.123456" not in str(error.value)


def test_a_duplicated_id_is_refused_naming_the_id_column():
    raw = features_table(record_id=[77, 78, 77])
    with pytest.raises(TableValidationError) as error:
        decode_set(table_file(raw), COLUMNS)
    assert "expect_column_values_to_be_unique(column=record_id): unexpected 2" in str(error.value)
    assert "77" not in str(error.value)


def test_a_non_integer_label_and_a_text_feature_are_refused_naming_the_column():
    with pytest.raises(DataFormatError, match=r"forget.table.label column 'target' holds 1 non-integer"):
        decode_set(table_file(features_table(target=[1.0, 2.5, 3.0])), COLUMNS)
    raw = features_table(f1=["a", "b", "c"])
    with pytest.raises(DataFormatError, match=r"\['f1'\] are not numeric"):
        decode_set(table_file(raw), TableColumns(label="target", features=["f0", "f1"]))


def test_a_file_that_is_not_a_table_is_refused_naming_it():
    with pytest.raises(DataFormatError, match=r"data/forget.parquet: not a readable Parquet table"):
        decode_set(table_file(b"not parquet at all"), COLUMNS)


def test_a_safetensors_set_decodes_as_before():
    raw = encode_arrays({"inputs": np.zeros((2, 3), np.float32), "targets": np.ones(2, np.int64)}, {})
    arrays = decode_set(table_file(raw, "data/set.safetensors"))
    assert arrays["inputs"].shape == (2, 3) and arrays["targets"].tolist() == [1, 1]
    with pytest.raises(CorruptDataError, match="data/set.safetensors: file is empty"):
        decode_set(table_file(b"", "data/set.safetensors"))


def test_restoration_pairs_are_matched_by_file_name():
    files = {"degraded/b.png": grey(10), "clean/b.png": grey(20), "degraded/a.png": grey(30), "clean/a.png": grey(40)}
    arrays = decode_set(folder(files))
    assert arrays["inputs"].shape == (2, 1, 4, 4) and arrays["inputs"].dtype == np.uint8
    assert arrays["inputs"][:, 0, 0, 0].tolist() == [30, 10] and arrays["targets"][:, 0, 0, 0].tolist() == [40, 20]
    pairs = PairSet.from_arrays("pairs", arrays)
    assert float(pairs.inputs.max()) <= 1.0  # scaled to [0, 1] like the uint8 set files


def test_rgb_images_are_three_channels_first():
    pixels = np.zeros((5, 6, 3), np.uint8)
    pixels[..., 2] = 200
    arrays = decode_set(folder({"degraded/x.png": png(pixels), "clean/x.png": png(pixels)}))
    assert arrays["inputs"].shape == (1, 3, 5, 6) and arrays["inputs"][0, 2, 0, 0] == 200


def test_an_image_without_its_partner_is_refused_naming_the_file():
    files = {"degraded/a.png": grey(1), "clean/a.png": grey(2), "degraded/lonely.png": grey(3)}
    with pytest.raises(DataFormatError, match=r"data/forget: degraded/lonely.png has no partner clean/lonely.png"):
        decode_set(folder(files))


def test_a_corrupt_png_is_refused_naming_the_file():
    files = {"degraded/a.png": grey(1), "clean/a.png": grey(2)[:40]}
    with pytest.raises(DataFormatError, match=r"data/forget/clean/a.png: not a decodable image"):
        decode_set(folder(files))


def test_images_of_mixed_sizes_are_refused_naming_one_file_of_each_size():
    files = {"8/a.png": grey(1), "8/b.png": grey(2), "8/c.png": grey(3, size=(5, 4))}
    with pytest.raises(DataFormatError) as error:
        decode_set(folder(files))
    assert "images of 2 sizes" in str(error.value)
    assert "8/a.png: 1x4x4" in str(error.value) and "8/c.png: 1x5x4" in str(error.value)


def test_class_folders_are_named_by_their_class_index():
    arrays = decode_set(folder({"8/a.png": grey(1), "8/b.jpg": _jpeg(), "3/c.png": grey(3)}))
    assert arrays["targets"].tolist() == [3, 8, 8] and arrays["inputs"].shape == (3, 1, 4, 4)


def test_a_class_folder_not_named_by_an_index_is_refused():
    with pytest.raises(DataFormatError, match=r"folder 'cats' is not a class index"):
        decode_set(folder({"cats/a.png": grey(1)}))


def test_a_file_that_is_not_an_image_is_refused_naming_it():
    with pytest.raises(DataFormatError, match=r"data/forget/8/notes.txt: not a PNG or JPEG"):
        decode_set(folder({"8/a.png": grey(1), "8/notes.txt": b"hello"}))


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_repo(tmp_path_factory):
    repo = init_data_repo(tmp_path_factory.mktemp("image-repo"))
    commit_data(repo, {"images/8/a.png": grey(1), "images/8/b.png": grey(2), "table.csv": b"x,y\n1,2\n"}, "images")
    return repo


def test_a_dvc_directory_is_fetched_as_its_files_hashed_like_dvc(image_repo):
    reader = RevisionReader(image_repo, "main")
    whole = reader.fetch("data")
    tracked = (image_repo / "data.dvc").read_text()
    assert isinstance(whole, FetchedDirectory) and f"md5: {whole.dvc_md5}" in tracked  # DVC's own .dir hash
    images = reader.fetch("data/images/")
    assert sorted(images.files) == ["8/a.png", "8/b.png"] and images.path == "data/images"
    assert images.dvc_md5.endswith(".dir") and images.size_bytes == len(grey(1)) + len(grey(2))
    listing = [{"relpath": name, "sha256": hashlib.sha256(images.files[name]).hexdigest()}
               for name in ("8/a.png", "8/b.png")]
    assert images.sha256 == hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()
    assert images.provenance()["files"] == 2 and "content" not in images.provenance()
    assert decode_set(images)["targets"].tolist() == [8, 8]
