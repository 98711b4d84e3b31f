"""Incident reports: every generic operation on ``incident_reports``, and the finders."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, in_range
from wxdata.schema.incidents import (
    INCIDENT_REPORTS,
    IncidentReport,
    IncidentSeverity,
    IncidentStatus,
    IncidentType,
)

ENTITY = INCIDENT_REPORTS
ops = bind_entity(ENTITY)
find_by_id = ops.find_by_id
find_one = ops.find_one
find_many = ops.find_many
find_projected = ops.find_projected
find_after = ops.find_after
count = ops.count
exists = ops.exists
create = ops.create
update = ops.update
delete = ops.delete
restore = ops.restore
bulk_create = ops.bulk_create
update_where = ops.update_where
update_ids = ops.update_ids
stream = ops.stream
record_disclosure = ops.record_disclosure

find_by_student = by_column(INCIDENT_REPORTS, "student_id", order_by=[("occurred_at", "desc")],
                            doc="A student's incident reports, latest first.")
find_by_severity = by_column(INCIDENT_REPORTS, "severity", order_by=[("occurred_at", "desc")],
                             doc="Incident reports of one severity, latest first.")
find_by_date_range = in_range(INCIDENT_REPORTS, "occurred_at", order_by=[("occurred_at", "desc")],
                              doc="Incidents that occurred within [start, end], latest first.")


__all__ = [
    "ENTITY",
    "IncidentReport",
    "IncidentSeverity",
    "IncidentStatus",
    "IncidentType",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_date_range",
    "find_by_id",
    "find_by_severity",
    "find_by_student",
    "find_many",
    "find_one",
    "find_projected",
    "ops",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
