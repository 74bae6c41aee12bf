"""Example sets on disk and in memory.

On disk a set is one safetensors file holding `inputs` and `targets` (uint8, N x 3 x H x W for
restoration) plus string metadata. safetensors loads without unpickling and writes identical bytes
for identical arrays, so DVC hashes stay stable across machines.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors


class CorruptDataError(ValueError):
    """A data file that cannot be decoded or lacks the arrays a set needs."""


def encode_arrays(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    # safetensors orders metadata keys at random, so all of it travels as one sorted JSON string.
    header = {"erasure": json.dumps(metadata, sort_keys=True)}
    return save_safetensors({key: np.ascontiguousarray(value) for key, value in arrays.items()}, metadata=header)


def decode_arrays(raw: bytes, source: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata of one set file; `source` names the file in errors."""
    if not raw:
        raise CorruptDataError(f"{source}: file is empty (0 bytes)")
    try:
        arrays = load_safetensors(raw)
        header_size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_size]).get("__metadata__") or {}
        metadata = json.loads(header.get("erasure", "{}"))
    except (SafetensorError, ValueError, UnicodeDecodeError) as error:
        raise CorruptDataError(f"{source}: not a readable safetensors file ({error})") from error
    missing = {"inputs", "targets"} - arrays.keys()
    if missing:
        raise CorruptDataError(f"{source}: missing arrays {sorted(missing)}; found {sorted(arrays)}")
    return arrays, metadata


@dataclass
class PairSet:
    """Inputs and targets as float tensors, named after what they hold.

    Restoration: degraded inputs and clean targets in [0, 1]. Classification: features in [0, 1]
    and class labels (as floats; the task casts them). `ids`, when the file has them, are stable
    example ids so a deletion request can name single examples.
    """

    name: str
    inputs: torch.Tensor
    targets: torch.Tensor
    ids: torch.Tensor | None = None

    @classmethod
    def from_arrays(cls, name: str, arrays: dict[str, np.ndarray]) -> "PairSet":
        def to_unit(array: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(np.asarray(array)).float()
            return tensor / 255.0 if array.dtype == np.uint8 else tensor

        ids = torch.from_numpy(np.asarray(arrays["ids"])).long() if "ids" in arrays else None
        return cls(name=name, inputs=to_unit(arrays["inputs"]), targets=to_unit(arrays["targets"]), ids=ids)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def subset(self, indices: torch.Tensor) -> "PairSet":
        ids = self.ids[indices] if self.ids is not None else None
        return PairSet(self.name, self.inputs[indices], self.targets[indices], ids)


def concat(sets: list[PairSet], name: str) -> PairSet:
    ids = torch.cat([s.ids for s in sets]) if all(s.ids is not None for s in sets) else None
    return PairSet(name, torch.cat([s.inputs for s in sets]), torch.cat([s.targets for s in sets]), ids)


def example_digests(pairs: PairSet) -> list[str]:
    """One sha256 per example, over its input and target bytes: an example's identity by content."""
    inputs, targets = pairs.inputs.detach().cpu().contiguous(), pairs.targets.detach().cpu().contiguous()
    return [hashlib.sha256(i.numpy().tobytes() + t.numpy().tobytes()).hexdigest() for i, t in zip(inputs, targets)]


def without(pairs: PairSet, excluded: PairSet) -> tuple[PairSet, int]:
    """`pairs` less every example that is also in `excluded` (same input and target), and how many went.

    A request may name a whole split as retain data: the examples it asks to forget must not be
    learned again from there, nor count towards what the model keeps.
    """
    dropped = set(example_digests(excluded))
    keep = [index for index, digest in enumerate(example_digests(pairs)) if digest not in dropped]
    if len(keep) == len(pairs):
        return pairs, 0
    return pairs.subset(torch.tensor(keep, dtype=torch.long)), len(pairs) - len(keep)
