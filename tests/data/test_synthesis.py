"""The demo data is synthesised deterministically, and its evaluation split is truly held out."""

import hashlib
import json

import numpy as np

from unlearning.data.degradations import DEGRADATIONS
from unlearning.data.pairs import decode_arrays
from unlearning.data.restoration import RestorationDataConfig, build_restoration_sets, set_path
from unlearning.data.sources import load_image

SMALL = RestorationDataConfig(patch_size=16, train_patches_per_degradation=24, eval_patches_per_degradation=8)


def test_same_seed_gives_identical_bytes():
    assert build_restoration_sets(SMALL) == build_restoration_sets(SMALL)


def test_another_seed_gives_other_bytes():
    other = RestorationDataConfig(**{**SMALL.__dict__, "seed": 1})
    first, second = build_restoration_sets(SMALL), build_restoration_sets(other)
    assert all(first[path] != second[path] for path in first)


def test_every_degradation_has_train_and_eval_pairs_of_the_configured_shape():
    files = build_restoration_sets(SMALL)
    for name in DEGRADATIONS:
        for split, count in (("train", 24), ("eval", 8)):
            arrays, metadata = decode_arrays(files[set_path(split, name)], name)
            assert arrays["inputs"].shape == arrays["targets"].shape == (count, 3, 16, 16)
            assert arrays["inputs"].dtype == np.uint8
            assert {k: v for k, v in metadata.items() if k != "source_images"} == {"task": "restoration", "degradation": name, "split": split}


def test_every_patch_has_a_stable_id_unique_across_sets_and_names_its_source_image():
    files = build_restoration_sets(SMALL)
    ids = np.concatenate([decode_arrays(raw, path)[0]["ids"] for path, raw in files.items()])
    assert len(set(ids.tolist())) == len(ids)
    arrays, metadata = decode_arrays(files[set_path("train", "haze")], "haze")
    names = json.loads(metadata["source_images"])
    assert names[0] == "astronaut" and set(arrays["sources"].tolist()) == set(range(len(names)))
    # A patch's source is the image it was cut from: its clean pixels are a crop of that image.
    patch = arrays["targets"][0].transpose(1, 2, 0)
    image = load_image(names[arrays["sources"][0]])
    windows = np.lib.stride_tricks.sliding_window_view(image, patch.shape)
    assert (windows == patch).all(axis=(-3, -2, -1)).any()


def test_degradations_change_the_clean_image():
    files = build_restoration_sets(SMALL)
    for name in DEGRADATIONS:
        arrays, _ = decode_arrays(files[set_path("train", name)], name)
        difference = np.abs(arrays["inputs"].astype(int) - arrays["targets"].astype(int)).mean()
        assert difference > 2, f"{name} barely changes its input (mean |diff| {difference:.2f})"


def test_haze_brightens_and_flattens_contrast():
    files = build_restoration_sets(SMALL)
    arrays, _ = decode_arrays(files[set_path("train", "haze")], "haze")
    assert arrays["inputs"].mean() > arrays["targets"].mean()
    assert arrays["inputs"].std() < arrays["targets"].std()


def test_evaluation_patches_never_appear_in_training_patches():
    files = build_restoration_sets(RestorationDataConfig(patch_size=16, train_patches_per_degradation=200))

    def clean_hashes(split):
        hashes = set()
        for name in DEGRADATIONS:
            arrays, _ = decode_arrays(files[set_path(split, name)], name)
            hashes |= {hashlib.sha256(t.tobytes()).hexdigest() for t in arrays["targets"]}
        return hashes

    assert not clean_hashes("train") & clean_hashes("eval")
