"""Acme's data repository: small photo patches, hazy and noisy, as PNG image folders tracked by DVC in a git
repo of its own.

Clean patches are cut from photos that ship inside scikit-image and scikit-learn (offline), training and
evaluation from different photos. Each is degraded with a seeded generator, so the same seed writes the same
bytes. Layout: data/{train,eval}/{haze,noise}/{degraded,clean}/NNNN.png, each degraded image beside its
clean original under the same name (uint8 RGB, 32x32).
"""

import argparse
import io
import subprocess
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_images

PATCH = 32
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "china")
EVAL_PHOTOS = ("chelsea", "flower")
PAIRS = {"train": 96, "eval": 32}  # per degradation
NOISE_SIGMA = 0.1  # of the [0, 1] range
WITHDRAWN = "haze"  # the hazy photos' licence ended: the example request


def photo(name: str) -> np.ndarray:
    """A clean uint8 RGB photo (H, W, 3) by name."""
    if name in ("china", "flower"):
        return dict(zip(("china", "flower"), load_sample_images().images))[name]
    return getattr(skimage.data, name)()[..., :3]


def patches(photos: list[np.ndarray], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random PATCH x PATCH patches (N, PATCH, PATCH, 3), photos taken in turn."""
    out = np.empty((count, PATCH, PATCH, 3), dtype=np.uint8)
    for index in range(count):
        image = photos[index % len(photos)]
        top, left = rng.integers(0, image.shape[0] - PATCH + 1), rng.integers(0, image.shape[1] - PATCH + 1)
        out[index] = image[top: top + PATCH, left: left + PATCH]
    return out


def noise(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise."""
    return clean + rng.normal(0.0, NOISE_SIGMA, size=clean.shape)


def haze(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering, I = J*t + A*(1-t): a bright airlight A, a transmission t thinning toward the top."""
    count = clean.shape[0]
    rows = np.linspace(1.0, 0.0, PATCH)[None, :, None, None]
    airlight = rng.uniform(0.75, 0.95, size=(count, 1, 1, 1))
    transmission = rng.uniform(0.4, 0.6, size=(count, 1, 1, 1)) + rng.uniform(0.0, 0.2, size=(count, 1, 1, 1)) * rows
    return clean * transmission + airlight * (1 - transmission)


DEGRADATIONS = {"haze": haze, "noise": noise}


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folders(seed: int = 0) -> dict[str, bytes]:
    """Every PNG's bytes keyed by its path under data/. Same seed, same bytes."""
    photos = {"train": [photo(n) for n in TRAIN_PHOTOS], "eval": [photo(n) for n in EVAL_PHOTOS]}
    files = {}
    # One generator per (split, degradation): adding a degradation never shifts the others.
    streams = iter(np.random.SeedSequence(seed).spawn(len(PAIRS) * len(DEGRADATIONS)))
    for split, count in PAIRS.items():
        for name, degrade in DEGRADATIONS.items():
            rng = np.random.default_rng(next(streams))
            clean = patches(photos[split], count, rng)
            degraded = np.clip(np.rint(degrade(clean / 255.0, rng) * 255.0), 0, 255).astype(np.uint8)
            for index in range(count):
                for folder, pixels in (("clean", clean[index]), ("degraded", degraded[index])):
                    files[f"{split}/{name}/{folder}/{index:04d}.png"] = png(pixels)
    return files


def _run(repo: Path, *command: str) -> None:
    subprocess.run(command, cwd=repo, check=True, capture_output=True)


def build_repo(repo: Path, remote: Path, seed: int = 0) -> None:
    """A git + DVC repository at `repo` holding the data/ image folders (one commit), pushed to the local `remote`."""
    repo.mkdir(parents=True, exist_ok=True)
    _run(repo, "git", "init", "-q", "-b", "main")
    _run(repo, "git", "config", "user.email", "data@acme.example")
    _run(repo, "git", "config", "user.name", "Acme data team")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    _run(repo, "dvc", "remote", "add", "-d", "local", str(remote))
    for relative, content in image_folders(seed).items():
        path = repo / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    _run(repo, "dvc", "add", "-q", "data")
    _run(repo, "git", "add", "data.dvc", ".gitignore", ".dvc/config")
    _run(repo, "git", "commit", "-q", "-m", "hazy and noisy photo patches, as PNG folders")
    _run(repo, "dvc", "push", "-q")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--remote", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    build_repo(arguments.repo, arguments.remote, arguments.seed)
