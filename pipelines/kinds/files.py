"""Forgetting named data files: the `forget:` form and data handling that restoration and classification share.

The request names DVC paths at a git revision: the forget set, retain sets, and held-out evaluation sets.
They are fetched and decoded once, in the pull data stage; validation, unlearning, verification and
export all read the decoded sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from pipelines import datastore
from pipelines.datastore import FetchedFile
from pipelines.kinds.base import ForgetTarget, ModelKind, Strict
from pipelines.retain import retain_without_forget
from unlearning.data.pairs import PairSet, concat, decode_arrays, example_digests, without


class ForgetFiles(ForgetTarget):
    form_key = "path"
    form_summary = "data files (path, rev, evaluation)"

    path: str = Field(description="DVC-tracked path of the forget set, e.g. data/restoration/train/haze.safetensors")
    rev: str = Field(description="git revision of the data repository the path is read at")
    evaluation: str = Field(description="held-out set of the same kind, used to measure forgetting")

    def named_paths(self) -> set[str]:
        return {self.path, self.evaluation}


class RetainFiles(Strict):
    paths: list[str] = Field(default_factory=list, description="sets the model must keep serving; read at forget.rev")
    evaluation: list[str] = Field(min_length=1, description="held-out sets used to measure retention")


@dataclass
class DecodedFile:
    """A fetched file (provenance, hashes) and its arrays, decoded once."""

    fetched: FetchedFile
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return Path(self.fetched.path).stem

    def pairs(self) -> PairSet:
        return PairSet.from_arrays(self.name, self.arrays)


@dataclass
class FileData:
    """A file-based request's data: forget, retain and evaluation sets (by set name)."""

    forget: DecodedFile
    retain: list[DecodedFile]
    evaluation: dict[str, DecodedFile]
    forgotten: str  # the name of the held-out set of the forgotten data
    forget_pairs: PairSet
    retain_pairs: list[PairSet]

    @property
    def forgotten_evaluation(self) -> DecodedFile:
        return self.evaluation[self.forgotten]

    def evaluation_sets(self) -> dict[str, PairSet]:
        """The held-out sets by name; the kept ones less the held-out examples of the forgotten data."""
        sets = {name: decoded.pairs() for name, decoded in self.evaluation.items()}
        forgotten = sets[self.forgotten]
        return {name: pairs if name == self.forgotten else without(pairs, forgotten)[0] for name, pairs in sets.items()}


def _decode(fetched: FetchedFile) -> DecodedFile:
    return DecodedFile(fetched, decode_arrays(fetched.content, fetched.path)[0])


def pull_files(settings, request) -> FileData:
    """Fetch and decode every file the request names, at `forget.rev`."""
    forget_target: ForgetFiles = request.forget
    reader = datastore.reader(settings.data_repo, forget_target.rev)

    def read(path: str) -> DecodedFile:
        return _decode(reader.fetch(path))

    forget = read(forget_target.path)
    retain = [read(path) for path in request.retain.paths]
    evaluation = {}
    for path in [forget_target.evaluation, *request.retain.evaluation]:
        decoded = read(path)
        evaluation[decoded.name] = decoded
    return FileData(forget, retain, evaluation, Path(forget_target.evaluation).stem, forget.pairs(),
                    [decoded.pairs() for decoded in retain])


def file_provenance(data: FileData) -> dict[str, Any]:
    return {
        "forget_data": {**data.forget.fetched.provenance(), "examples": len(data.forget_pairs)},
        "retain_data": [decoded.fetched.provenance() for decoded in data.retain],
        "evaluation_data": [decoded.fetched.provenance() for decoded in data.evaluation.values()],
    }


def unique(pairs: PairSet) -> PairSet:
    """`pairs` without repeated examples (two coalesced requests may forget the same example)."""
    first: dict[str, int] = {}
    for index, digest in enumerate(example_digests(pairs)):
        first.setdefault(digest, index)
    if len(first) == len(pairs):
        return pairs
    return pairs.subset(torch.tensor(sorted(first.values())))


def forget_and_retain(method, datas: list[FileData]) -> tuple[PairSet, PairSet | None, dict[str, int]]:
    """The union of the requests' forget sets, and of their retain sets less every forgotten example."""
    forget = unique(concat([data.forget_pairs for data in datas], "forget")) if len(datas) > 1 else datas[0].forget_pairs
    retain_by_hash = {}  # a set two requests keep is used once
    for data in datas:
        for decoded, pairs in zip(data.retain, data.retain_pairs):
            retain_by_hash.setdefault(decoded.fetched.sha256, pairs)
    retain = concat(list(retain_by_hash.values()), "retain") if retain_by_hash else None
    retain, excluded = retain_without_forget(method, forget, retain)
    retained = {"forget_examples": len(forget), "retain_examples": len(retain) if retain is not None else 0,
                "retain_examples_excluded_as_forget": excluded}
    return forget, retain, retained


def file_cache_inputs(data: FileData) -> list[str]:
    return [data.forget.fetched.sha256, *(decoded.fetched.sha256 for decoded in data.retain)]


class FileKind(ModelKind):
    """A kind whose requests name data files (restoration, classification): what they share."""

    forget_form = ForgetFiles

    def pull_data(self, settings, request, original) -> FileData:
        return pull_files(settings, request)

    def provenance(self, data: FileData) -> dict[str, Any]:
        return file_provenance(data)

    def forget_examples(self, data: FileData) -> int:
        return len(data.forget_pairs)

    def problem(self, method, original, datas, device, model):
        from unlearning.methods import UnlearningProblem

        forget, retain, retained = forget_and_retain(method, datas)
        return UnlearningProblem(model=model, forget=forget, retain=retain, device=device, task=self.task(model)), retained

    def export_inputs(self, data: FileData):
        return data.forgotten_evaluation.pairs().inputs

    def cache_inputs(self, data: FileData) -> list[str]:
        return file_cache_inputs(data)
