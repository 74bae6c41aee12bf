"""Forgetting named data files: the `forget:` form and data handling that restoration and classification share.

The request names DVC paths at a git revision: the forget set, retain sets, and held-out evaluation sets,
each a safetensors file, a table or an image folder (pipelines/kinds/formats.py). They are fetched and
decoded once, in the pull data stage; validation, unlearning, verification and export all read the
decoded sets.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from pipelines.adapters import datastore
from pipelines.adapters.datastore import FetchedFile
from pipelines.erasure import lineage
from pipelines.erasure.commitment import IdListError, commit_ids, commitment_key, key_id, new_salt, parse_id_list
from pipelines.flow.retain import retain_without_forget
from pipelines.kinds.base import ForgetTarget, ModelKind
from pipelines.kinds.formats import TableColumns, decode_set, is_table
from unlearning.data.pairs import PairSet, concat, encode_arrays, example_digests, without


class ForgetFiles(ForgetTarget):
    """The forget examples, named one of three ways: a forget set file (`path`), record ids (`records`), or a
    DVC-tracked manifest of record ids (`manifest`). Ids are looked up in the served version's training sets
    (its lineage) unless `sets` names others; `rev` defaults to the revision it was trained on."""

    form_key = "path"
    form_summary = "data files (path, rev, evaluation) or training records (records or manifest, evaluation)"

    path: str | None = Field(None, description="DVC-tracked path of the forget set, e.g. data/restoration/train/haze.safetensors")
    records: list[int] | None = Field(None, min_length=1, max_length=1_000_000,
                                      description="ids of the training examples to forget (the files' `ids` array)")
    manifest: str | None = Field(None, description="DVC-tracked text file of record ids, one per line")
    manifest_rev: str = Field("HEAD", description="git revision the manifest is read at")
    sets: list[str] | None = Field(None, min_length=1, description="training sets the ids are looked up in; "
                                   "default: the served version's training data")
    rev: str | None = Field(None, description="git revision of the data repository; default: the one the served "
                            "version was trained on")
    other_revision: bool = Field(False, description="true: `rev` is knowingly not the served version's training revision")
    evaluation: str = Field(description="held-out set of the same kind, used to measure forgetting")
    table: TableColumns | None = Field(None, description="the columns of every table (.parquet, .csv) the request "
                                       "reads: label, features, id")

    @classmethod
    def recognises(cls, value: dict) -> bool:
        return any(key in value for key in ("path", "records", "manifest"))

    @model_validator(mode="after")
    def _one_way_to_name_the_examples(self) -> "ForgetFiles":
        named = [key for key in ("path", "records", "manifest") if getattr(self, key) is not None]
        if len(named) != 1:
            raise ValueError(f"name the forget examples one way: exactly one of path, records, manifest (got {named or 'none'})")
        if self.sets is not None and self.path is not None:
            raise ValueError("sets: only with records or manifest (a forget set file is the forget set itself)")
        return self

    @property
    def by_record_id(self) -> bool:
        return self.path is None

    def named_paths(self) -> set[str]:
        return {p for p in (self.path, self.manifest, self.evaluation) if p is not None}


@dataclass
class DecodedFile:
    """A fetched file (provenance, hashes) and its arrays, decoded once."""

    fetched: FetchedFile
    arrays: dict[str, np.ndarray]
    table: TableColumns | None = None  # the columns it was read with, where it is a table

    @property
    def name(self) -> str:
        return Path(self.fetched.path).stem

    def provenance(self) -> dict[str, Any]:
        """The record's provenance of this set; a table's also names the columns read (the report rereads it)."""
        provenance = self.fetched.provenance()
        if self.table is not None:
            provenance["table"] = self.table.model_dump(exclude_none=True)
        return provenance

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
    rev_source: str | None = None  # why the data was read at this revision (named, or the training lineage)
    records: dict[str, Any] | None = None  # by record id: count, keyed commitment, salt, sets; never the ids

    @property
    def forgotten_evaluation(self) -> DecodedFile:
        return self.evaluation[self.forgotten]

    def evaluation_sets(self) -> dict[str, PairSet]:
        """The held-out sets by name; the kept ones less the held-out examples of the forgotten data."""
        sets = {name: decoded.pairs() for name, decoded in self.evaluation.items()}
        forgotten = sets[self.forgotten]
        return {name: pairs if name == self.forgotten else without(pairs, forgotten)[0] for name, pairs in sets.items()}


def decode_file(fetched: FetchedFile, table: TableColumns | None = None) -> DecodedFile:
    """A fetched set (file, table or image folder) with its arrays decoded (CorruptDataError names the file;
    a table's columns are checked by Great Expectations first)."""
    return DecodedFile(fetched, decode_set(fetched, table), table if is_table(fetched) else None)


class RecordIdError(datastore.DataRevisionError):
    """The request's record ids are unknown, repeated, or the training sets carry no ids.

    Messages name ids by their place in the request (`records[3]`, manifest line 4), never by value."""


def pull_files(settings, request, original=None) -> FileData:
    """Fetch and decode every file the request names, at `forget.rev` or the served version's training
    revision; by record id, the forget set is the training sets' examples with those ids."""
    target: ForgetFiles = request.forget
    trained_on = original.lineage if original is not None else None
    rev, rev_source = lineage.training_revision(
        settings.data_repo, trained_on, target.rev, target.other_revision, request.model.name,
        original.version if original is not None else "?",
    )
    reader = datastore.reader(settings.data_repo, rev)

    def read(path: str) -> DecodedFile:
        return decode_file(reader.fetch(path), target.table)

    records = None
    if target.by_record_id:
        forget, records = _select_records(settings, request, target, trained_on, rev, read)
    else:
        forget = read(target.path)
    retain = [read(path) for path in request.retain.paths]
    evaluation = {}
    for path in [target.evaluation, *request.retain.evaluation]:
        decoded = read(path)
        evaluation[decoded.name] = decoded
    return FileData(forget, retain, evaluation, Path(target.evaluation).stem, forget.pairs(),
                    [decoded.pairs() for decoded in retain], rev_source, records)


def _requested_ids(settings, target: ForgetFiles) -> tuple[list[int], list[str], dict[str, Any]]:
    """(ids, how each is named in messages, where the list came from)."""
    if target.records is not None:
        return list(target.records), [f"records[{i}]" for i in range(len(target.records))], {"source": "records"}
    fetched = datastore.reader(settings.data_repo, target.manifest_rev).fetch(target.manifest)
    text = fetched.content.decode(errors="replace")
    try:
        ids = parse_id_list(text, f"forget.manifest {target.manifest}")
    except IdListError as error:  # the request pointed at a bad list: refused, not a platform failure
        raise RecordIdError(str(error)) from None
    places = [f"manifest line {number}" for number, line in enumerate(text.splitlines(), start=1)
              if line.split("#", 1)[0].strip()]
    # The manifest's own hashes would let anyone test a guessed id list: only where it was read is kept.
    return ids, places, {"source": "manifest", "manifest": {"path": target.manifest, "rev": target.manifest_rev,
                                                            "commit": fetched.commit}}


def _select_records(settings, request, target: ForgetFiles, trained_on, rev: str, read) -> tuple[DecodedFile, dict]:
    ids, places, source = _requested_ids(settings, target)
    if not ids:
        raise RecordIdError("forget.manifest: the manifest lists no record ids")
    first_place: dict[int, str] = {}
    repeated = []
    for value, place in zip(ids, places):
        if value in first_place:
            repeated.append(f"{place} repeats {first_place[value]}")
        else:
            first_place[value] = place
    if repeated:
        raise RecordIdError(f"forget: {len(repeated)} repeated record id(s): " + "; ".join(repeated[:5])
                            + ("; ..." if len(repeated) > 5 else ""))
    set_paths = target.sets or (trained_on.paths if trained_on is not None else None)
    if not set_paths:
        raise RecordIdError("forget.sets: the served version has no recorded training data; name the training sets")
    wanted = np.array(sorted(first_place), dtype=np.int64)
    parts, found, sets = [], set(), []
    for path in set_paths:
        decoded = read(path)
        if "ids" not in decoded.arrays:
            raise RecordIdError(f"forget.sets: {path} at {rev!r} has no record ids (`ids` array); name a forget set file instead")
        chosen = np.isin(decoded.arrays["ids"], wanted)
        found.update(int(v) for v in decoded.arrays["ids"][chosen])
        sets.append({**decoded.fetched.provenance(), "examples_forgotten": int(chosen.sum())})
        if chosen.any():
            parts.append({key: array[chosen] for key, array in decoded.arrays.items() if len(array) == len(chosen)})
    unknown = [place for value, place in first_place.items() if value not in found]
    if unknown:
        raise RecordIdError(
            f"forget: {len(unknown)} of {len(first_place)} record ids are not in the training sets {set_paths} at "
            f"{rev!r}: {', '.join(unknown[:5])}" + (", ..." if len(unknown) > 5 else "")
        )
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    subset = encode_arrays(arrays, {"selection": "records"})
    first = read(set_paths[0]).fetched
    # Keyed, not a plain sha256: anyone holding the training data could otherwise hash the subset of a
    # guessed id list and compare. (It only keys the persisted unlearn result, which must survive a rerun.)
    digest = hmac.new(commitment_key(settings), b"erasure-record-subset-v1\n" + subset, hashlib.sha256).hexdigest()
    fetched = FetchedFile(path="records", rev=rev, commit=first.commit, dvc_md5="",
                          sha256=digest, size_bytes=len(subset), content=b"")
    salt = new_salt()
    records = {**source, "count": len(first_place), "commitment": commit_ids(settings, first_place, salt),
               "salt": salt, "key_id": key_id(settings), "algorithm": "HMAC-SHA256(key, salt, sorted ids)",
               "training_sets": sets}
    return DecodedFile(fetched, arrays), records


def file_provenance(data: FileData) -> dict[str, Any]:
    if data.records is not None:
        forget = {"records": data.records, "rev": data.forget.fetched.rev, "commit": data.forget.fetched.commit,
                  "examples": len(data.forget_pairs)}
    else:
        forget = {**data.forget.provenance(), "examples": len(data.forget_pairs)}
    if data.rev_source:
        forget["rev_source"] = data.rev_source
    return {
        "forget_data": forget,
        "retain_data": [decoded.provenance() for decoded in data.retain],
        "evaluation_data": [decoded.provenance() for decoded in data.evaluation.values()],
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
        return pull_files(settings, request, original)

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

    def erasable_examples(self, data: FileData) -> PairSet:
        return data.forget_pairs
