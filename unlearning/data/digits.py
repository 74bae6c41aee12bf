"""The digits classification data set (sklearn's 8x8 digits, offline): train and test set files.

`digits/{train,test}.safetensors` hold a whole split; `digits/{train,test}/class-K.safetensors` the
same examples of one class, so a deletion request can name a class's data as a DVC path. Each file holds `inputs` (N x 64 float32 in [0, 1]), `targets` (N int64 class labels) and `ids`
(N int64, the example's row in `load_digits`, stable across splits so a request can name examples).
The split is stratified and seeded; same config, same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits

from unlearning.data.pairs import PairSet, decode_arrays, encode_arrays

CLASSES = 10


@dataclass(frozen=True)
class DigitsDataConfig:
    """train_fraction 0.7 is the usual split; 0.2 with long training is the overfit variant on which
    membership inference is measurable (RESEARCH.md: at chance on the 70/30 split)."""

    train_fraction: float = 0.7
    seed: int = 0


def set_path(split: str) -> str:
    return f"digits/{split}.safetensors"


def class_set_path(split: str, label: int) -> str:
    return f"digits/{split}/class-{label}.safetensors"


def build_digits_sets(config: DigitsDataConfig) -> dict[str, bytes]:
    """Train and test set files' bytes keyed by relative path."""
    digits = load_digits()
    inputs = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(config.seed)
    train_ids = []
    for label in range(CLASSES):
        members = np.flatnonzero(labels == label)
        train_ids.append(rng.permutation(members)[: int(round(config.train_fraction * len(members)))])
    train_ids = np.sort(np.concatenate(train_ids))
    test_ids = np.setdiff1d(np.arange(len(labels)), train_ids)
    files = {}
    for split, ids in (("train", train_ids), ("test", test_ids)):
        metadata = {"task": "classification", "dataset": "sklearn-digits", "split": split,
                    "train_fraction": str(config.train_fraction), "seed": str(config.seed)}
        files[set_path(split)] = _encode(inputs, labels, ids, metadata)
        for label in range(CLASSES):
            members = ids[labels[ids] == label]
            files[class_set_path(split, label)] = _encode(inputs, labels, members, {**metadata, "class": str(label)})
    return files


def _encode(inputs: np.ndarray, labels: np.ndarray, ids: np.ndarray, metadata: dict[str, str]) -> bytes:
    return encode_arrays({"inputs": inputs[ids], "targets": labels[ids], "ids": ids.astype(np.int64)}, metadata)


def load_set(files: dict[str, bytes], split: str) -> PairSet:
    arrays, _ = decode_arrays(files[set_path(split)], set_path(split))
    return PairSet.from_arrays(f"digits-{split}", arrays)


class UnknownExampleIdError(ValueError):
    pass


def split_forget(
    pairs: PairSet, forget_class: int | None = None, forget_ids: list[int] | None = None
) -> tuple[PairSet, PairSet]:
    """(forget, retain): the examples of one class, or those with the given ids, and everything else."""
    if (forget_class is None) == (forget_ids is None):
        raise ValueError("give exactly one of forget_class or forget_ids")
    if forget_class is not None:
        chosen = pairs.targets.long() == forget_class
    else:
        wanted = torch.tensor(sorted(forget_ids), dtype=torch.long)
        chosen = torch.isin(pairs.ids, wanted)
        missing = sorted(set(wanted.tolist()) - set(pairs.ids[chosen].tolist()))
        if missing:
            raise UnknownExampleIdError(f"forget_ids not in {pairs.name}: {missing[:10]}")
    forget, retain = pairs.subset(torch.nonzero(chosen).flatten()), pairs.subset(torch.nonzero(~chosen).flatten())
    return (PairSet("forget", forget.inputs, forget.targets, forget.ids),
            PairSet("retain", retain.inputs, retain.targets, retain.ids))
