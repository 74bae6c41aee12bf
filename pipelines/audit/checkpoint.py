"""Signed checkpoints: the chain's name, length and head hash at one moment, signed with the attestation key.

Written after every record (MLflow artifact `audit/checkpoint.json` of the record's run, a local copy
under the ledger, and the deletion certificate). Because every record carries the hash of the one before
it, the head hash at length n commits to records 0..n-1. Whoever keeps an old checkpoint can later prove,
without trusting the store, that the current trail *extends* it: at least as long, and the record at
position n-1 still hashes to the checkpoint's head. Cutting records from the end, or rewriting history
consistently in ledger, records and registry tags, fails that check (the idea of a transparency log's
signed tree head, C2SP tlog-checkpoint, on a hash chain).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from pipelines.adapters.settings import Settings
from pipelines.audit import chain as chain_module
from pipelines.audit import signing
from pipelines.audit.record import now

CHECKPOINT_TYPE = "erasure.checkpoint/v1"
CHECKPOINT_ARTIFACT = "audit/checkpoint.json"
_EMBEDDED = re.compile(r'<script type="application/json" id="erasure-checkpoint">(.*?)</script>', re.S)


class CheckpointError(ValueError):
    """A checkpoint is malformed, its signature does not verify, or the trail does not extend it."""


def local_checkpoint_path(settings: Settings, chain: str) -> Path:
    return chain_module.ledger_dir(settings) / f"{chain}.checkpoint.json"


def sign_checkpoint(key: signing.SigningKey, chain: str, length: int, head_sha256: str) -> dict[str, Any]:
    body = {"_type": CHECKPOINT_TYPE, "chain": chain, "length": length, "head_sha256": head_sha256, "time": now()}
    return {
        "checkpoint": body,
        "signature": {
            "algorithm": "ed25519",
            "key_fingerprint": key.fingerprint,
            "public_key": base64.b64encode(signing.raw_public_bytes(key.public_key)).decode(),
            "value": base64.b64encode(key.private_key.sign(signing.statement_bytes(body))).decode(),
        },
    }


def checkpoint_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def embed(document: dict[str, Any]) -> str:
    """The checkpoint as an HTML block a certificate carries and `read_checkpoint` finds again."""
    text = json.dumps(document, sort_keys=True).replace("</", "<\\/")
    return f'<script type="application/json" id="erasure-checkpoint">{text}</script>'


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint from its JSON file, or from a deletion certificate (HTML) that embeds one."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from error
    match = _EMBEDDED.search(text)
    try:
        return json.loads(match.group(1) if match else text)
    except ValueError as error:
        raise CheckpointError(f"{path}: neither a checkpoint (JSON) nor a certificate that embeds one") from error


def check_signature(document: dict[str, Any], trusted: dict) -> dict[str, Any]:
    """The checkpoint body of a validly signed checkpoint; raises CheckpointError otherwise."""
    try:
        body, signature = document["checkpoint"], document["signature"]
        int(body["length"]), str(body["chain"]), str(body["head_sha256"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint is malformed: {type(error).__name__}: {error}") from error
    names = {"document": "checkpoint", "body": "checkpoint", "key": "checkpoint key", "signature": "checkpoint signature"}
    return signing.verify_signed(body, signature, CHECKPOINT_TYPE, trusted, CheckpointError, names)


def extension_problems(body: dict[str, Any], entries: list[chain_module.LedgerEntry]) -> list[str]:
    """Why the ledger `entries` do not extend the checkpoint `body` (empty: they do). The records behind
    the entries are re-hashed and their links recomputed by the trail verification run alongside."""
    length, head = int(body["length"]), body["head_sha256"]
    if len(entries) < length:
        return [f"checkpoint of {body['time']} has {length} records, the trail now has {len(entries)}: "
                f"{length - len(entries)} record(s) were cut from the end"]
    if length and entries[length - 1].record_sha256 != head:
        return [f"record #{length - 1} now hashes to {entries[length - 1].record_sha256[:16]}..., the checkpoint of "
                f"{body['time']} says {head[:16]}...: history up to it was rewritten"]
    return []
