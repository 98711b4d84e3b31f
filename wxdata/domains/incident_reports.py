"""Incident reports: the domain's finders, and ``ops`` (the generic functions on ``incident_reports``)."""

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
ops = bind_entity(INCIDENT_REPORTS)

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
    "find_by_date_range",
    "find_by_severity",
    "find_by_student",
    "ops",
]
