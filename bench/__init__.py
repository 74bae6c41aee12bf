"""Benchmarks: each prints ratios measured in one run and writes its figures under bench/results/."""

from __future__ import annotations

import torch


def requested_device(name: str, bench: str, fallback: str = "running on the CPU") -> torch.device:
    """The `--device` a benchmark was asked for; cuda without a visible device falls back to the CPU, saying so
    (bench/gpu.sh runs the same commands on a machine with or without one)."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"{bench}: no CUDA device visible; {fallback}")
        return torch.device("cpu")
    return device
