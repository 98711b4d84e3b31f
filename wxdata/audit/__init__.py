"""The HIPAA/FERPA audit trail: records, the ``audited`` decorator, explicit ``log_*`` calls,
the one redaction registry, by-value diffs and the two lanes (same transaction / autocommit)."""

from wxdata.audit.decorator import audited, extract
from wxdata.audit.diff import diff, same_value
from wxdata.audit.lanes import close_lanes, lane_health, write_detached
from wxdata.audit.log import (
    build_record,
    log_access_denied,
    log_bulk,
    log_create,
    log_delete,
    log_export,
    log_failure,
    log_read,
    log_transaction,
    log_update,
    write_record,
    write_surviving,
)
from wxdata.audit.ownership import current_owner, owning, reads_owned
from wxdata.audit.record import AuditAction, AuditRecord, AuditSeverity, ComplianceType
from wxdata.audit.redact import MASK, SECRET_MARK, is_secret_name, redact_row, redact_value, scrub

__all__ = [
    "MASK",
    "SECRET_MARK",
    "AuditAction",
    "AuditRecord",
    "AuditSeverity",
    "ComplianceType",
    "audited",
    "build_record",
    "close_lanes",
    "current_owner",
    "diff",
    "extract",
    "is_secret_name",
    "lane_health",
    "log_access_denied",
    "log_bulk",
    "log_create",
    "log_delete",
    "log_export",
    "log_failure",
    "log_read",
    "log_transaction",
    "log_update",
    "owning",
    "reads_owned",
    "redact_row",
    "redact_value",
    "same_value",
    "scrub",
    "write_detached",
    "write_record",
    "write_surviving",
]
