"""Identities for the GUIDE scenario: single held-out digit instances standing for one person's photo.

`identities/identity-K.safetensors` holds one test-split digit (never in the GAN's, the encoder's or the
identity networks' training data, which all use the train split); `identities/others.safetensors` a
fixed set of other test digits, `per_class` of each class, for the "other identities kept" check (the
verification uses those of classes other than the identity's: at 8x8 two writers' instances of one
digit are as alike as twins). Same config, same bytes; each file has `inputs` (N x 64 in [0, 1]),
`targets` (the digit class) and `ids` (the row in sklearn's `load_digits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unlearning.data.digits import CLASSES, DigitsDataConfig, build_digits_sets, set_path
from unlearning.data.pairs import decode_arrays, encode_arrays


@dataclass(frozen=True)
class IdentitySetsConfig:
    identities: int = 3
    others_per_class: int = 2
    seed: int = 0


def identity_path(index: int) -> str:
    return f"identities/identity-{index}.safetensors"


OTHERS_PATH = "identities/others.safetensors"


def build_identity_sets(digits: DigitsDataConfig, config: IdentitySetsConfig = IdentitySetsConfig()) -> dict[str, bytes]:
    """The identity files and the others file, drawn (seeded) from the test split; identities of
    different classes, none of them among the others."""
    test, _ = decode_arrays(build_digits_sets(digits)[set_path("test")], "digits test")
    inputs, labels, ids = test["inputs"], test["targets"], test["ids"]
    order = np.random.default_rng(config.seed).permutation(len(ids))
    chosen_identities, seen = [], set()
    for index in order:
        if int(labels[index]) not in seen:
            chosen_identities.append(index)
            seen.add(int(labels[index]))
        if len(chosen_identities) == config.identities:
            break
    others = []
    for label in range(CLASSES):
        members = [i for i in order if labels[i] == label and i not in chosen_identities]
        others += members[: config.others_per_class]
    others = np.sort(np.asarray(others))
    metadata = {"dataset": "sklearn-digits", "split": "test", "seed": str(config.seed)}
    files = {}
    for number, index in enumerate(chosen_identities):
        rows = np.asarray([index])
        files[identity_path(number)] = encode_arrays(
            {"inputs": inputs[rows], "targets": labels[rows], "ids": ids[rows]}, {**metadata, "role": "identity"})
    files[OTHERS_PATH] = encode_arrays({"inputs": inputs[others], "targets": labels[others], "ids": ids[others]},
                                       {**metadata, "role": "other identities"})
    return files
