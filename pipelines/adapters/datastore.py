"""DVC: read example sets by path and git revision, and record what was read by hash, never by content."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path


class DataRevisionError(LookupError):
    """The revision or the path does not exist in the data repository."""


@dataclass(frozen=True)
class FetchedFile:
    """One DVC-tracked file as read at a revision. `content` stays in memory and is never logged."""

    path: str
    rev: str
    commit: str
    dvc_md5: str
    sha256: str
    size_bytes: int
    content: bytes

    def provenance(self) -> dict[str, str | int]:
        """What the audit record keeps of this file: where it came from and its hashes."""
        return {
            "path": self.path,
            "rev": self.rev,
            "commit": self.commit,
            "dvc_md5": self.dvc_md5,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
        }


# Revisions pinned to the commits a recorded run read them at (pipelines/audit/reproduce.py): within
# `pinned_revisions`, a request's `rev: HEAD` means the commit HEAD was then, not now.
_PINNED_COMMITS: ContextVar[dict[str, str] | None] = ContextVar("pinned_commits", default=None)


@contextmanager
def pinned_revisions(commits: dict[str, str]) -> Iterator[None]:
    token = _PINNED_COMMITS.set(dict(commits))
    try:
        yield
    finally:
        _PINNED_COMMITS.reset(token)


def resolve_commit(repo: Path, rev: str) -> str:
    rev = (_PINNED_COMMITS.get() or {}).get(rev, rev)
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise DataRevisionError(f"forget.rev: revision {rev!r} does not exist in data repository {repo}")
    return result.stdout.strip()


def fetch(repo: Path, path: str, rev: str) -> FetchedFile:
    """Read `path` as DVC tracked it at `rev` (pulling from the DVC remote if the cache lacks it)."""
    return RevisionReader(repo, rev).fetch(path)


class RevisionReader:
    """Reads paths at one revision through one DVC filesystem: DVC builds the repository's index once,
    not once per file (~0.1 s a file). Each path is read once; errors are fetch()'s, raised at the path
    they concern, in the order the paths are read."""

    def __init__(self, repo: Path, rev: str):
        self.repo, self.rev = Path(repo), rev
        self._commit: str | None = None
        self._filesystem = None
        self._read: dict[str, FetchedFile] = {}

    def fetch(self, path: str) -> FetchedFile:
        if path not in self._read:
            self._read[path] = self._fetch(path)
        return self._read[path]

    def _fetch(self, path: str) -> FetchedFile:
        from dvc.api import DVCFileSystem

        rev = self.rev
        if self._commit is None:
            self._commit = resolve_commit(self.repo, rev)
        commit = self._commit
        try:
            if self._filesystem is None:
                self._filesystem = DVCFileSystem(str(self.repo), rev=commit)
            info = self._filesystem.info(path)
            content = self._filesystem.read_bytes(path)
        except FileNotFoundError as error:
            raise DataRevisionError(f"path {path!r} is not tracked by DVC at rev {rev!r} ({commit[:12]})") from error
        except Exception as error:  # DVC raises many types for a missing cache/remote object
            raise DataRevisionError(f"cannot read {path!r} at rev {rev!r} from DVC: {type(error).__name__}: {error}") from error
        if info.get("type") != "file":
            raise DataRevisionError(f"path {path!r} at rev {rev!r} is a {info.get('type')}, not a file")
        return FetchedFile(
            path=path,
            rev=rev,
            commit=commit,
            dvc_md5=str(info.get("md5") or (info.get("dvc_info") or {}).get("md5", "")),
            sha256=hashlib.sha256(content).hexdigest(),
            size_bytes=len(content),
            content=content,
        )


# Readers shared by the requests of one coalesced run (pipelines/operations/coalesce.py), by (repository, revision).
_SHARED_READERS: ContextVar[dict[tuple[Path, str], RevisionReader] | None] = ContextVar("shared_readers", default=None)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Within this block, reads at the same repository and revision share one reader: requests coalesced
    into one run that name the same file (retain and evaluation sets) read it once."""
    token = _SHARED_READERS.set({})
    try:
        yield
    finally:
        _SHARED_READERS.reset(token)


def reader(repo: Path, rev: str) -> RevisionReader:
    """A reader of `repo` at `rev`: the shared one inside `shared_reads()`, else a new one."""
    shared = _SHARED_READERS.get()
    if shared is None:
        return RevisionReader(repo, rev)
    return shared.setdefault((Path(repo), rev), RevisionReader(repo, rev))
