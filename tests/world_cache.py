"""Seeded test worlds built once per test run and shared by every xdist worker and module.

The GAN and identity worlds take 30-80 s each to train on one core, and three modules in two folders use
each. Building them per module (or per worker) trained the same bytes up to three times in one run. Here
the first caller trains and saves the world under the run's shared temporary root; every other caller
waits on the lock and loads that file. Each caller gets its own copy, as a module fixture did before, so
a test that changes its world changes no other module's. A run is one process environment (one CPU
capability, one code version), so the name alone keys the file; a new run starts from an empty root.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import torch
from filelock import FileLock

World = TypeVar("World")


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary root every xdist worker of this run shares (a worker's own base temp is one level down)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_world(name: str, build: Callable[[], World], tmp_path_factory: pytest.TempPathFactory) -> World:
    """`build()`'s world, trained at most once per test run."""
    folder = shared_root(tmp_path_factory) / "worlds"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.pt"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            # Our own file, written by this run a moment ago: the full pickle (modules, dataclasses) is trusted.
            return torch.load(path, weights_only=False)
        world = build()
        partial = path.with_suffix(".partial")
        torch.save(world, partial)
        partial.replace(path)
        return world
