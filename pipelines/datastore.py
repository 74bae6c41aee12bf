"""DVC: read example sets by path and git revision, and record what was read by hash, never by content."""

from __future__ import annotations

import hashlib
import subprocess
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


def resolve_commit(repo: Path, rev: str) -> str:
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
    from dvc.api import DVCFileSystem

    commit = resolve_commit(repo, rev)
    try:
        filesystem = DVCFileSystem(str(repo), rev=commit)
        info = filesystem.info(path)
        content = filesystem.read_bytes(path)
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
