"""The audit trail: records (schema), the per-model hash chain, signed attestations, verification, review.

Modules, in the order a record travels: `record` (schema) -> `store` (write/read, chain, attest)
-> `chain` (ledger) + `signing` (Ed25519) -> `verify` (offline check of everything) -> `report` and
`certificate` (HTML for reviewers) -> `publish` (Prefect artifacts).
"""

from pipelines.audit.record import SCHEMA_VERSION, AuditRecord, MetricEvidence, now
from pipelines.audit.store import RECORD_ARTIFACT, list_records, local_record_path, read_record, write_record

__all__ = [
    "SCHEMA_VERSION",
    "RECORD_ARTIFACT",
    "AuditRecord",
    "MetricEvidence",
    "now",
    "write_record",
    "read_record",
    "list_records",
    "local_record_path",
]
