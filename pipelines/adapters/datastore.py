"""DVC: read example sets by path and git revision, and record what was read by hash, never by content."""

from __future__ import annotations

import hashlib
import json
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


@dataclass(frozen=True)
class FetchedDirectory(FetchedFile):
    """A DVC-tracked directory read at a revision (an image folder): its files by path relative to it, in
    memory, never logged. Hashed like a file: `dvc_md5` is DVC's directory hash (`<md5>.dir`, the same
    value `dvc add` writes for a directory), `sha256` is over the sorted (relative path, file sha256) list,
    `size_bytes` the files' total; `content` is empty."""

    files: dict[str, bytes]

    def provenance(self) -> dict[str, str | int]:
        return {**super().provenance(), "files": len(self.files)}


def directory_hashes(entries: dict[str, tuple[str, bytes]]) -> tuple[str, str]:
    """(DVC's `.dir` md5, our sha256) of a directory from {relative path: (file md5, content)}.

    DVC hashes a directory as the md5 of the JSON list of {md5, relpath} sorted by path components
    (dvc-data's Tree); a subdirectory of a tracked directory has no stored hash, so it is computed the same
    way. The sha256 is the same list with each file's sha256."""
    paths = sorted(entries, key=lambda relpath: tuple(relpath.split("/")))
    md5_list = [{"md5": entries[relpath][0], "relpath": relpath} for relpath in paths]
    sha_list = [{"relpath": relpath, "sha256": hashlib.sha256(entries[relpath][1]).hexdigest()} for relpath in paths]
    md5 = hashlib.md5(json.dumps(md5_list, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"
    return md5, hashlib.sha256(json.dumps(sha_list, sort_keys=True).encode("utf-8")).hexdigest()


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
    """Read `path` as DVC tracked it at `rev` (pulling from the DVC remote if the cache lacks it); a
    directory comes back as a FetchedDirectory of its files."""
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
        path = path.rstrip("/")
        try:
            if self._filesystem is None:
                self._filesystem = DVCFileSystem(str(self.repo), rev=commit)
            info = self._filesystem.info(path)
            if info.get("type") == "directory":
                return self._fetch_directory(path, info, commit)
            content = self._filesystem.read_bytes(path)
        except FileNotFoundError as error:
            raise DataRevisionError(f"path {path!r} is not tracked by DVC at rev {rev!r} ({commit[:12]})") from error
        except DataRevisionError:
            raise
        except Exception as error:  # DVC raises many types for a missing cache/remote object
            raise DataRevisionError(f"cannot read {path!r} at rev {rev!r} from DVC: {type(error).__name__}: {error}") from error
        if info.get("type") != "file":
            raise DataRevisionError(f"path {path!r} at rev {rev!r} is a {info.get('type')}, not a file or directory")
        return FetchedFile(
            path=path,
            rev=rev,
            commit=commit,
            dvc_md5=dvc_md5(info),
            sha256=hashlib.sha256(content).hexdigest(),
            size_bytes=len(content),
            content=content,
        )

    def _fetch_directory(self, path: str, info: dict, commit: str) -> FetchedDirectory:
        entries = {}
        for name, file_info in self._filesystem.find(path, detail=True).items():
            content = self._filesystem.read_bytes(name)
            entries[name[len(path) + 1 :]] = (dvc_md5(file_info) or hashlib.md5(content).hexdigest(), content)
        if not entries:
            raise DataRevisionError(f"directory {path!r} at rev {self.rev!r} holds no files")
        md5, sha256 = directory_hashes(entries)
        files = {relpath: content for relpath, (_, content) in sorted(entries.items())}
        return FetchedDirectory(
            path=path,
            rev=self.rev,
            commit=commit,
            dvc_md5=dvc_md5(info) or md5,
            sha256=sha256,
            size_bytes=sum(len(content) for content in files.values()),
            content=b"",
            files=files,
        )


def dvc_md5(info: dict) -> str:
    """The md5 DVC records for a path, from DVCFileSystem.info (top level, or under dvc_info)."""
    return str(info.get("md5") or (info.get("dvc_info") or {}).get("md5") or "")


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
