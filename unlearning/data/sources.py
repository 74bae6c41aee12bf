"""Clean RGB images that ship inside installed packages, split by image into train and held-out."""

from __future__ import annotations

import numpy as np
import skimage.data
from sklearn.datasets import load_sample_images

# Splitting by whole image keeps evaluation patches from ever sharing pixels with training patches.
TRAIN_IMAGES = ("astronaut", "coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "china")
HELD_OUT_IMAGES = ("chelsea", "flower", "motorcycle")


def load_image(name: str) -> np.ndarray:
    """One clean uint8 RGB image (H, W, 3) by name."""
    if name in ("china", "flower"):
        images = dict(zip(("china", "flower"), load_sample_images().images))
        return images[name]
    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()[..., :3]


def cut_patches(images: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random size x size patches (N, size, size, 3), images drawn round-robin."""
    patches = np.empty((count, size, size, 3), dtype=np.uint8)
    for index in range(count):
        image = images[index % len(images)]
        top = rng.integers(0, image.shape[0] - size + 1)
        left = rng.integers(0, image.shape[1] - size + 1)
        patches[index] = image[top : top + size, left : left + size]
    return patches
