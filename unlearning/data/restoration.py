"""The all-in-one restoration data set: clean patches x {noise, rain, haze}, train and held-out."""

from __future__ import annotations

from dataclasses import dataclass
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
        for split, clean, rng in (("train", train_clean, train_rng), ("eval", eval_clean, eval_rng)):
            degraded = degrade(clean, rng)
            arrays = {"inputs": degraded.transpose(0, 3, 1, 2), "targets": clean.transpose(0, 3, 1, 2)}
            metadata = {"task": "restoration", "degradation": degradation, "split": split}
            files[set_path(split, degradation)] = encode_arrays(arrays, metadata)
    return files


def write_sets(files: dict[str, bytes], root: Path) -> None:
    for relative, raw in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
