"""Data-parallel unlearning with torch DDP: every rank runs the method's shared loop on its slice of
each batch, and DDP averages the gradients, so N ranks take the same steps as one process.

Every rank draws the same global batch (the loop's generator is seeded identically everywhere) and
keeps its contiguous 1/N of it. A method's loss is a mean over examples, so the average of the
ranks' gradients equals the one-process gradient of the whole batch, up to float summation order.
Launch with `torchrun` (see pipelines/production/distributed.py); gloo on CPU, NCCL on GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from unlearning.data.pairs import PairSet
from unlearning.methods.base import UnlearningError, UnlearningMethod, UnlearningProblem, UnlearningRun


@dataclass(frozen=True)
class Rank:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_leader(self) -> bool:
        return self.rank == 0


def init_from_environment() -> Rank:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", torch.device("cuda", local_rank)
    else:
        backend, device = "gloo", torch.device("cpu")
    dist.init_process_group(backend=backend)
    return Rank(dist.get_rank(), dist.get_world_size(), device)


class RankSlice(UnlearningMethod):
    """Wraps a method so that its loss sees only this rank's slice of every batch."""

    name = "rank-slice"

    def __init__(self, method: UnlearningMethod, rank: Rank):
        super().__init__(method.params)
        self.method, self.rank = method, rank
        self.name, self.needs_retain = method.name, method.needs_retain  # messages name the real method

    def _slice(self, batch: PairSet | None) -> PairSet | None:
        if batch is None:
            return None
        size = len(batch)
        if size % self.rank.world_size:
            raise UnlearningError(
                f"batch of {size} examples does not split evenly over {self.rank.world_size} ranks; "
                f"choose a batch_size (and set sizes) divisible by the world size"
            )
        share = size // self.rank.world_size
        keep = slice(self.rank.rank * share, (self.rank.rank + 1) * share)
        return PairSet(batch.name, batch.inputs[keep], batch.targets[keep])

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        return self.method.loss(problem, self._slice(forget_batch), self._slice(retain_batch))


def unlearn_data_parallel(method: UnlearningMethod, problem: UnlearningProblem, rank: Rank) -> UnlearningRun:
    """Run `method` on `problem` across the process group; every rank ends with the same weights.

    `problem.model` stays the plain module (updated in place); DDP wraps it only for the loop.
    """
    plain = problem.model
    problem.model = DistributedDataParallel(plain, device_ids=[rank.device.index] if rank.device.type == "cuda" else None)
    try:
        outcome = RankSlice(method, rank).run(problem, show_progress=rank.is_leader)
    finally:
        problem.model = plain
    return outcome
