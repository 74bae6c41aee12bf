"""The all-in-one restoration data set: clean patches x {noise, rain, haze}, train and held-out.

Each set file holds, besides `inputs` and `targets`, `ids` (int64, stable: split, degradation and the
patch's place in its set, so a deletion request can name patches) and `sources` (int64, which source image
the patch was cut from: an index into the file's `source_images` metadata, the images' "photographer"
standing in for a data subject whose records a request names).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

import numpy as np

from unlearning.data.degradations import DEGRADATIONS
from unlearning.data.pairs import encode_arrays
from unlearning.data.sources import HELD_OUT_IMAGES, TRAIN_IMAGES, cut_patches, load_image


@dataclass(frozen=True)
class RestorationDataConfig:
    patch_size: int = 32
    train_patches_per_degradation: int = 500
    eval_patches_per_degradation: int = 64
    seed: int = 0


# Ids never collide across sets: split base + degradation block + the patch's index in its set.
ID_BASE = {"train": 0, "eval": 5_000_000}
ID_BLOCK = 1_000_000


def patch_ids(split: str, degradation: str, count: int) -> np.ndarray:
    block = list(DEGRADATIONS).index(degradation)
    return ID_BASE[split] + block * ID_BLOCK + np.arange(count, dtype=np.int64)


def patch_sources(count: int, images: int) -> np.ndarray:
    """The source image of each patch: cut_patches draws images round-robin."""
    return np.arange(count, dtype=np.int64) % images


def set_path(split: str, degradation: str) -> str:
    """Where one set lives, relative to the data root (e.g. `restoration/train/haze.safetensors`)."""
    return f"restoration/{split}/{degradation}.safetensors"


def build_restoration_sets(config: RestorationDataConfig) -> dict[str, bytes]:
    """Every set file's bytes, keyed by its relative path. Same config, same bytes."""
    train_images = [load_image(name) for name in TRAIN_IMAGES]
    held_out_images = [load_image(name) for name in HELD_OUT_IMAGES]
    files: dict[str, bytes] = {}
    # One child generator per (split, degradation) so adding a degradation never shifts the others.
    seeds = np.random.SeedSequence(config.seed)
    eval_clean = cut_patches(
        held_out_images,
        config.eval_patches_per_degradation,
        config.patch_size,
        np.random.default_rng(seeds.spawn(1)[0]),
    )
    for degradation, degrade in DEGRADATIONS.items():
        train_rng, eval_rng = (np.random.default_rng(s) for s in seeds.spawn(2))
        train_clean = cut_patches(train_images, config.train_patches_per_degradation, config.patch_size, train_rng)
        for split, clean, rng, names in (("train", train_clean, train_rng, TRAIN_IMAGES),
                                         ("eval", eval_clean, eval_rng, HELD_OUT_IMAGES)):
            degraded = degrade(clean, rng)
            arrays = {"inputs": degraded.transpose(0, 3, 1, 2), "targets": clean.transpose(0, 3, 1, 2),
                      "ids": patch_ids(split, degradation, len(clean)), "sources": patch_sources(len(clean), len(names))}
            metadata = {"task": "restoration", "degradation": degradation, "split": split,
                        "source_images": json.dumps(list(names))}
            files[set_path(split, degradation)] = encode_arrays(arrays, metadata)
    return files


def write_sets(files: dict[str, bytes], root: Path) -> None:
    for relative, raw in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
