"""Keyed commitments: what the audit trail keeps of record ids and of forgotten examples, instead of them.

Ids can be personal data (a data subject's row numbers). A record keeps their count and
HMAC-SHA256(deployment key, salt + sorted ids): an auditor handed the id list can check it against the
record (`erasure audit check-ids`), nobody without the key can test guesses against it, and the per-request
salt keeps two requests for the same ids unlinkable. Forgotten examples are kept the same way, keyed by
content, so `erasure audit verify` can find one that came back into the training data (residue).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from pipelines.adapters.settings import Settings

IDS_DOMAIN = b"erasure-record-ids-v1\n"
EXAMPLE_DOMAIN = b"erasure-example-v1\n"


class CommitmentKeyError(RuntimeError):
    """The deployment's commitment key is unusable (empty, unreadable)."""


def commitment_key(settings: Settings) -> bytes:
    """ERASURE_COMMITMENT_KEY, or the deployment's key file, generated (32 random bytes) on first use."""
    if settings.commitment_key:
        return settings.commitment_key.encode()
    path = Path(settings.commitment_key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two first requests at once must not end up with different keys.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    key = path.read_text().strip()
    if not key:
        raise CommitmentKeyError(f"commitment key file {path} is empty")
    return key.encode()


def key_id(settings: Settings) -> str:
    """Which key made a commitment (a hash of the key, not the key): tells an auditor which key to use."""
    return "sha256:" + hashlib.sha256(commitment_key(settings)).hexdigest()[:16]


def new_salt() -> str:
    return secrets.token_hex(16)


def canonical_ids(ids: Iterable[int]) -> bytes:
    return "\n".join(str(value) for value in sorted(int(value) for value in ids)).encode()


def commit_ids(settings: Settings, ids: Iterable[int], salt: str) -> str:
    """HMAC-SHA256 of the sorted ids under the deployment key and this request's salt (hex)."""
    message = IDS_DOMAIN + salt.encode() + b"\n" + canonical_ids(ids)
    return hmac.new(commitment_key(settings), message, hashlib.sha256).hexdigest()


def ids_match(settings: Settings, ids: Iterable[int], salt: str, commitment: str) -> bool:
    return hmac.compare_digest(commit_ids(settings, ids, salt), commitment)


def example_commitments(settings: Settings, content_digests: Iterable[str]) -> list[str]:
    """One keyed digest per example, from its content sha256 (unlearning.data.pairs.example_digests)."""
    key = commitment_key(settings)
    return [hmac.new(key, EXAMPLE_DOMAIN + digest.encode(), hashlib.sha256).hexdigest() for digest in content_digests]


class IdListError(ValueError):
    """An id list (a manifest, or the file handed to check-ids) has a line that is not an integer id."""


def parse_id_list(text: str, source: str) -> list[int]:
    """Ids one per line; blank lines and `#` comments are ignored. Bad lines are named by number, not content."""
    ids = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            ids.append(int(line))
        except ValueError:
            raise IdListError(f"{source}: line {number} is not an integer record id") from None
    return ids
