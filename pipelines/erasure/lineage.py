"""Training lineage: which data a registered version was trained on, as a data repository commit and the
DVC paths it read there, each with its DVC md5.

Base models get it at registration (the data repository's commit and the files the DVC `train*` stage
reads); an unlearned version gets its parent's training data minus what it forgot: the data revision the
erasure committed (pipelines/erasure/training_data.py), or, until that commit exists, its parent's lineage with the
erasure still pending. It lives in the version's tags, where release managers look first, and in the
audit record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.adapters import datastore

TAG_DATA_COMMIT = "erasure.training_data.commit"
TAG_DATA_FILES = "erasure.training_data.files"
TAG_DATA_ERASURE = "erasure.training_data.erasure"


class LineageError(datastore.DataRevisionError):
    """The request's revision is not the one the served version was trained on, or there is no lineage."""


@dataclass(frozen=True)
class Lineage:
    commit: str
    files: dict[str, str]  # DVC path -> DVC md5 at `commit`

    @property
    def paths(self) -> list[str]:
        return sorted(self.files)

    def tags(self) -> dict[str, str]:
        return {TAG_DATA_COMMIT: self.commit, TAG_DATA_FILES: json.dumps(self.files, sort_keys=True)}

    def as_record(self) -> dict:
        return {"commit": self.commit, "files": [{"path": p, "dvc_md5": m} for p, m in sorted(self.files.items())]}


def from_tags(tags: dict[str, str]) -> Lineage | None:
    """The lineage a version's tags record, or None for a version registered without one."""
    if TAG_DATA_COMMIT not in tags:
        return None
    return Lineage(tags[TAG_DATA_COMMIT], json.loads(tags.get(TAG_DATA_FILES) or "{}"))


def at_revision(repo: Path, rev: str, paths: list[str]) -> Lineage:
    """The lineage of training on `paths` as DVC tracks them at `rev` of `repo`."""
    reader = datastore.RevisionReader(repo, rev)
    files = {path: reader.fetch(path) for path in paths}
    commit = next(iter(files.values())).commit if files else datastore.resolve_commit(repo, rev)
    return Lineage(commit, {path: fetched.dvc_md5 for path, fetched in files.items()})


def training_revision(repo: Path, lineage: Lineage | None, rev: str | None, other_revision: bool,
                      model: str, version: str) -> tuple[str, str]:
    """(revision to read the request's data at, where it came from). A revision named by the request must be
    the served version's training revision unless the request says it means another (`other_revision`)."""
    if rev is None:
        if lineage is None:
            raise LineageError(
                f"forget.rev: {model} version {version} has no recorded training data (lineage); "
                "name the data revision the request is about"
            )
        return lineage.commit, f"training data of {model} version {version}"
    if lineage is None or other_revision:
        return rev, "named by the request" + (" (other_revision: true)" if lineage is not None else "")
    commit = datastore.resolve_commit(repo, rev)
    if commit == lineage.commit:
        return rev, f"named by the request; the training data of {model} version {version}"
    # Another commit holding the very same training files is the same training data (a code commit in
    # between, in a repository that holds code and data).
    if _same_files(repo, commit, lineage):
        return rev, (f"named by the request; holds the same training files as {lineage.commit[:12]}, "
                     f"the training data of {model} version {version}")
    raise LineageError(
        f"forget.rev: {rev!r} ({commit[:12]}) does not hold the data {model} version {version} was trained on "
        f"(commit {lineage.commit[:12]}); omit forget.rev to use the training revision, or set "
        "forget.other_revision: true if the request is meant for another revision"
    )


def _same_files(repo: Path, commit: str, lineage: Lineage) -> bool:
    reader = datastore.RevisionReader(repo, commit)
    try:
        return all(reader.fetch(path).dvc_md5 == md5 for path, md5 in lineage.files.items())
    except datastore.DataRevisionError:
        return False
