"""Erasing forgotten examples from the training data itself, and purging them from DVC's storage.

After a promotion, `erase` writes every DVC-tracked set file that holds a forgotten example again without
it, and commits the updated `.dvc` file on the configured branch of the data repository (message naming the
request ids, trailer `Erasure-Request:` for each). Examples are matched by keyed content digest
(pipelines/erasure/commitment.py), so the same function serves the flow and a retry from the audit record alone.
Retrying is idempotent per request id: a commit that already names the request is found, not made again.

`purge` then deletes, from the DVC cache and every configured remote, the content-addressed objects of the
files as they were before the erasure. What that costs: the older revisions that reference those objects
can no longer be checked out (`dvc checkout`/`dvc pull` fail for those files), and the data hashes in older
audit records can no longer be re-read; `erasure audit verify` reports those as purged, not as broken.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipelines.adapters import datastore
from pipelines.adapters.settings import Settings
from pipelines.erasure.commitment import example_commitments
from pipelines.erasure.lineage import Lineage, at_revision
from pipelines.operations import locks
from unlearning.data.pairs import CorruptDataError, PairSet, decode_arrays, encode_arrays, example_digests

TRAILER = "Erasure-Request"


class DataErasureError(RuntimeError):
    """The data repository cannot take the erasure commit (dirty workspace, unknown branch, DVC failure)."""


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise DataErasureError(f"git {' '.join(args[:3])} in {repo}: {result.stderr.strip()[-400:]}")
    return result.stdout.strip()


def _dvc(repo: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise DataErasureError(f"dvc {' '.join(args[:2])} in {repo}: {(result.stderr or result.stdout).strip()[-400:]}")
    return result.stdout.strip()


def data_branch(settings: Settings) -> str:
    return settings.data_branch or _git(settings.data_repo, "symbolic-ref", "--short", "HEAD")


def example_keys(settings: Settings, pairs: PairSet) -> list[str]:
    """The keyed digests of `pairs`' examples: what records keep to find them again in any file."""
    return example_commitments(settings, example_digests(pairs))


def tracked_outputs(repo: Path, paths: Iterable[str]) -> dict[str, str]:
    """{.dvc file: the output it tracks} for the outputs holding `paths` (e.g. data.dvc -> data)."""
    found = {}
    for dvc_file in _git(repo, "ls-files", "*.dvc").splitlines():
        parent = Path(dvc_file).parent
        for out in (yaml.safe_load((repo / dvc_file).read_text()) or {}).get("outs", []):
            output = (parent / out["path"]).as_posix()
            if any(path == output or path.startswith(output + "/") for path in paths):
                found[dvc_file] = output
    return found


# Sets that requests may read (pipelines/kinds/formats.py) but that an erasure cannot rewrite yet.
READ_NOT_REWRITTEN = (".parquet", ".csv", ".png", ".jpg", ".jpeg")


def scan(settings: Settings, rev: str, outputs: Iterable[str],
         keys: set[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per set file under `outputs` at `rev` that holds any example whose keyed digest is in `keys`: its DVC
    md5, its arrays and which rows hold them; and the tables and image files, which an erasure cannot
    rewrite (not read). Files that are not example sets are skipped."""
    from dvc.api import DVCFileSystem

    filesystem = DVCFileSystem(str(settings.data_repo), rev=datastore.resolve_commit(settings.data_repo, rev))
    hits, not_rewritten = {}, []
    for output in outputs:
        for path in sorted(filesystem.find(output)):
            if path.lower().endswith(READ_NOT_REWRITTEN):
                not_rewritten.append(path)
                continue
            try:
                arrays, metadata = decode_arrays(filesystem.read_bytes(path), path)
            except CorruptDataError:
                continue
            rows = np.array([key in keys for key in example_keys(settings, PairSet.from_arrays(path, arrays))], dtype=bool)
            if rows.any():
                info = filesystem.info(path)
                md5 = datastore.dvc_md5(info)
                hits[path] = {"md5": md5, "arrays": arrays, "metadata": metadata, "rows": rows}
    return hits, not_rewritten


def _commit_naming(repo: Path, branch: str, request_id: str) -> str | None:
    # Anchored to the whole trailer line: request req-1 must not find req-10's commit.
    pattern = f"^{TRAILER}: " + request_id.replace(".", "\\.") + "$"
    found = _git(repo, "log", branch, f"--grep={pattern}", "--format=%H")
    return found.splitlines()[0] if found else None


def _changed_files(settings: Settings, parent: str, commit: str, outputs: Iterable[str]) -> list[dict[str, Any]]:
    """What an erasure commit changed: per set file, its md5 before and after (read back from DVC)."""
    from dvc.api import DVCFileSystem

    def md5s(rev: str) -> dict[str, str]:
        filesystem = DVCFileSystem(str(settings.data_repo), rev=rev)
        found = {}
        for output in outputs:
            for path, info in filesystem.find(output, detail=True).items():
                found[path] = str(info.get("md5") or (info.get("dvc_info") or {}).get("md5", ""))
        return found

    before, after = md5s(parent), md5s(commit)
    return [{"path": path, "md5_before": md5, "md5_after": after.get(path)}
            for path, md5 in sorted(before.items()) if after.get(path) != md5]


@dataclass
class Erasure:
    """What an erasure did, as the audit record keeps it (`data_erasure`)."""

    status: str  # committed | unchanged | failed | skipped
    fields: dict[str, Any]

    def as_record(self) -> dict[str, Any]:
        return {"status": self.status, **self.fields}


def erase(settings: Settings, request_ids: list[str], keys: list[str], trained_on: Lineage) -> tuple[Erasure, Lineage]:
    """Commit the training data without the examples whose keyed digests are `keys`; returns what was done
    and the new lineage (the same paths at the new commit). Idempotent per request id (the first one)."""
    repo, keyset = settings.data_repo, set(keys)
    with locks.data_repo_lock(settings, repo):
        branch = data_branch(settings)
        outputs = tracked_outputs(repo, trained_on.paths)
        if not outputs:
            raise DataErasureError(f"no .dvc file in {repo} tracks the training data {trained_on.paths}")
        common = {"branch": branch, "base_commit": trained_on.commit, "request_ids": request_ids,
                  "examples": len(keyset), "example_keys": sorted(keyset), "dvc_files": sorted(outputs)}
        earlier = _commit_naming(repo, branch, request_ids[0])
        if earlier is not None:
            files = _changed_files(settings, f"{earlier}^", earlier, outputs.values())
            new = at_revision(repo, earlier, trained_on.paths)
            return Erasure("committed", {**common, "commit": earlier, "files": files, "retried": True}), new

        # Only the .dvc files are committed (by path), so other uncommitted work in the repository stays as it is.
        if _git(repo, "status", "--porcelain", "--", *outputs):
            raise DataErasureError(f"data repository {repo} has uncommitted changes to {sorted(outputs)}: commit or revert them first")
        if _git(repo, "symbolic-ref", "--short", "HEAD") != branch:
            _git(repo, "checkout", "-q", branch)
        status = _dvc(repo, "status", "--json", *outputs)
        if status not in ("", "{}"):
            raise DataErasureError(f"the workspace data of {repo} differs from {branch}'s .dvc files ({status[:200]}): run `dvc checkout`")

        head = _git(repo, "rev-parse", "HEAD")
        hits, not_rewritten = scan(settings, head, outputs.values(), keyset)
        trained = [path.rstrip("/") for path in trained_on.paths]
        unsupported = sorted(path for path in not_rewritten
                             if any(path == root or path.startswith(f"{root}/") for root in trained))
        if unsupported:
            # Saying "unchanged" would claim the forgotten examples are in no training file; they may be in these.
            new = at_revision(repo, head, trained_on.paths)
            return Erasure("skipped", {**common, "commit": head, "files": [], "reason": (
                f"the training data holds sets Erasure reads but does not rewrite (tables, image files): "
                f"{', '.join(unsupported[:3])}{' and more' if len(unsupported) > 3 else ''}; remove the forgotten "
                "examples there and commit")}), new
        if not hits:
            new = at_revision(repo, head, trained_on.paths)
            return Erasure("unchanged", {**common, "commit": head, "files": [],
                                         "note": "no training file held the forgotten examples"}), new
        files = []
        for path, hit in hits.items():
            keep = ~hit["rows"]
            arrays = {key: (array[keep] if len(array) == len(keep) else array) for key, array in hit["arrays"].items()}
            # Set files carry their metadata as one JSON string (pairs.encode_arrays): kept as it was.
            (repo / path).write_bytes(encode_arrays(arrays, hit["metadata"]))
            files.append({"path": path, "md5_before": hit["md5"], "examples_removed": int(hit["rows"].sum())})
        for output in outputs.values():
            _dvc(repo, "add", "-q", output)
        _dvc(repo, "push", "-q", *outputs)
        message = (f"erasure: remove {sum(f['examples_removed'] for f in files)} training examples "
                   f"forgotten by request {', '.join(request_ids)}\n\n"
                   + "".join(f"{TRAILER}: {request_id}\n" for request_id in request_ids))
        identity = [] if _configured(repo, "user.email") else ["-c", "user.name=erasure", "-c", "user.email=erasure@localhost"]
        _git(repo, *identity, "commit", "-q", "-m", message, "--", *outputs)
        commit = _git(repo, "rev-parse", "HEAD")
        new = at_revision(repo, commit, trained_on.paths)
        after = {path: md5 for path, md5 in _md5s_at(settings, commit, [f["path"] for f in files]).items()}
        for entry in files:
            entry["md5_after"] = after.get(entry["path"])
        return Erasure("committed", {**common, "commit": commit, "files": files}), new


def _configured(repo: Path, key: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "config", key], capture_output=True).returncode == 0


def _md5s_at(settings: Settings, rev: str, paths: list[str]) -> dict[str, str]:
    reader = datastore.RevisionReader(settings.data_repo, rev)
    return {path: reader.fetch(path).dvc_md5 for path in paths}


def _object_stores(settings: Settings) -> list[tuple[str, Any]]:
    """(name, DVC object database) of the cache and of every configured remote."""
    from dvc.repo import Repo

    repo = Repo(str(settings.data_repo))
    stores = [("cache", repo.cache.local)]
    if getattr(repo.cache, "legacy", None) is not None:
        stores.append(("cache (DVC 2 layout)", repo.cache.legacy))
    for name in repo.config.get("remote", {}):
        stores.append((f"remote {name}", repo.cloud.get_remote_odb(name)))
    return stores


def present_objects(settings: Settings, md5s: Iterable[str]) -> list[dict[str, str]]:
    """Where each of `md5s` is still stored: [{md5, where, path}]."""
    found = []
    for where, store in _object_stores(settings):
        for md5 in md5s:
            path = store.oid_to_path(md5)
            if store.fs.exists(path):
                found.append({"md5": md5, "where": where, "path": str(path)})
    return found


def referenced_now(settings: Settings, outputs: Iterable[str]) -> set[str]:
    """The md5s of every file under `outputs` at the head of the data branch."""
    from dvc.api import DVCFileSystem

    filesystem = DVCFileSystem(str(settings.data_repo), rev=datastore.resolve_commit(settings.data_repo, data_branch(settings)))
    md5s = set()
    for output in outputs:
        for info in filesystem.find(output, detail=True).values():
            md5s.add(str(info.get("md5") or (info.get("dvc_info") or {}).get("md5", "")))
    return md5s


PURGE_COST = (
    "older revisions of the data repository that reference these objects can no longer be checked out or pulled "
    "for those files, and the data hashes in older audit records can no longer be re-read "
    "(erasure audit verify reports them as purged, not as broken)"
)


def purge(settings: Settings, erasure: dict[str, Any]) -> dict[str, Any]:
    """Delete the pre-erasure objects of the files an erasure rewrote from the cache and every remote.
    An object the data branch still references is kept and named (it cannot hold a forgotten example)."""
    md5s = sorted({entry["md5_before"] for entry in erasure.get("files", []) if entry.get("md5_before")})
    repo = settings.data_repo
    outputs = [yaml.safe_load((repo / f).read_text())["outs"][0]["path"] for f in erasure.get("dvc_files", [])]
    with locks.data_repo_lock(settings, repo):
        still_used = referenced_now(settings, [(Path(f).parent / o).as_posix() for f, o in zip(erasure.get("dvc_files", []), outputs)])
        kept = [md5 for md5 in md5s if md5 in still_used]
        removed = []
        for where, store in _object_stores(settings):
            for md5 in md5s:
                if md5 in still_used:
                    continue
                path = store.oid_to_path(md5)
                if store.fs.exists(path):
                    store.fs.remove(path)
                    removed.append({"md5": md5, "where": where})
    return {"objects": md5s, "removed": removed, "kept_referenced": kept, "cost": PURGE_COST}
