"""The per-model hash chain: an append-only JSON-lines ledger, one line per audit record.

Each record carries the sha256 of the previous record of the same model (`chain.previous_record_sha256`);
each ledger line repeats that link with the record's own hash and per-field hashes. The head (hash and
length) is mirrored into the registered model's tags and the produced version's tags, so rewriting the
trail silently means rewriting the records, the ledger and the registry consistently.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from pipelines.adapters.settings import Settings

UNATTRIBUTED = "_unattributed"
TAG_CHAIN_HEAD = "erasure.audit.chain_head"
TAG_CHAIN_LENGTH = "erasure.audit.chain_length"
TAG_RECORD_SHA = "erasure.audit.record_sha256"
TAG_SEQUENCE = "erasure.audit.sequence"
TAG_KEY = "erasure.audit.key_fingerprint"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][\w.-]*$")


class LedgerError(ValueError):
    """A ledger line cannot be parsed; the message names the file and line."""


class LedgerEntry(BaseModel):
    sequence: int
    request_id: str
    status: str
    mlflow_run_id: str | None
    record_sha256: str
    previous_record_sha256: str | None
    version_after: str | None = None
    attestation_sha256: str | None = None
    recorded_at: str
    field_sha256: dict[str, str] = Field(default_factory=dict)


def chain_name(model_name: str | None) -> str:
    return model_name if model_name and _SAFE_NAME.match(model_name) else UNATTRIBUTED


def ledger_dir(settings: Settings) -> Path:
    return settings.home / "ledger"


def ledger_path(settings: Settings, chain: str) -> Path:
    return ledger_dir(settings) / f"{chain}.jsonl"


def read_ledger(path: Path) -> list[LedgerEntry]:
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(LedgerEntry.model_validate_json(line))
        except ValueError as error:
            raise LedgerError(f"{path}:{number}: not a ledger entry ({error})") from error
    return entries


def chains(settings: Settings) -> list[str]:
    return sorted(path.stem for path in ledger_dir(settings).glob("*.jsonl"))


@dataclass
class OpenLedger:
    path: Path
    entries: list[LedgerEntry]

    @property
    def head(self) -> LedgerEntry | None:
        return self.entries[-1] if self.entries else None

    def append(self, entry: LedgerEntry) -> None:
        # One write of one line in append mode: never rewrites what is there.
        with self.path.open("a") as handle:
            handle.write(json.dumps(entry.model_dump(mode="json"), sort_keys=True) + "\n")
        self.entries.append(entry)


@contextmanager
def locked_ledger(settings: Settings, chain: str) -> Iterator[OpenLedger]:
    """The chain's ledger under an exclusive lock, so two flows for one model cannot fork the chain."""
    path = ledger_path(settings, chain)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield OpenLedger(path, read_ledger(path))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def head_tags(ledger: OpenLedger) -> dict[str, Any]:
    head = ledger.head
    return {TAG_CHAIN_HEAD: head.record_sha256, TAG_CHAIN_LENGTH: str(len(ledger.entries))} if head else {}
