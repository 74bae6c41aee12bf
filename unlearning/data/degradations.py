"""Synthetic degradations for all-in-one restoration: noise, rain, haze.

Each function maps clean uint8 images (N, H, W, 3) and a numpy Generator to degraded uint8 images.
The same generator state gives the same bytes, which is what keeps `data.dvc` stable.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

NOISE_SIGMA = 25.0 / 255.0


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def add_noise(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise, sigma 25/255."""
    images = clean.astype(np.float64) / 255.0
    return _to_uint8(images + rng.normal(0.0, NOISE_SIGMA, size=images.shape))


def add_rain(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bright, slanted, semi-transparent streaks, one random streak field per image."""
    images = clean.astype(np.float64) / 255.0
    count, height, width, _ = images.shape
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    degraded = np.empty_like(images)
    for index in range(count):
        slope = rng.uniform(-0.4, 0.4)
        streaks = np.zeros((height, width))
        for _ in range(rng.integers(4, 9)):
            offset = rng.uniform(-0.3 * width, 1.3 * width)
            top = rng.uniform(-0.5 * height, height)
            length = rng.uniform(0.3 * height, 0.8 * height)
            on_line = np.abs(cols - (offset + slope * rows)) < 0.75
            in_span = (rows >= top) & (rows <= top + length)
            streaks = np.maximum(streaks, (on_line & in_span) * rng.uniform(0.5, 0.9))
        degraded[index] = images[index] * (1 - streaks[..., None]) + streaks[..., None]
    return _to_uint8(degraded)


def add_haze(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering I = J*t + A*(1-t), with a smooth transmission map per image."""
    images = clean.astype(np.float64) / 255.0
    count, height, width, _ = images.shape
    ramp = np.linspace(0.0, 1.0, height)[:, None] * np.ones((1, width))
    degraded = np.empty_like(images)
    for index in range(count):
        airlight = rng.uniform(0.7, 0.95)
        transmission = rng.uniform(0.35, 0.6) + rng.uniform(0.0, 0.25) * ramp
        transmission = transmission[..., None]
        degraded[index] = images[index] * transmission + airlight * (1 - transmission)
    return _to_uint8(degraded)


DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noise": add_noise,
    "rain": add_rain,
    "haze": add_haze,
}
