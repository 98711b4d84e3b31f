"""Analytics reports, report templates, schedules, executions and performance metrics.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.analytics import (
    ANALYTICS_REPORTS,
    PERFORMANCE_METRICS,
    REPORT_EXECUTIONS,
    REPORT_SCHEDULES,
    REPORT_TEMPLATES,
    AnalyticsReport,
    PerformanceMetric,
    ReportExecution,
    ReportSchedule,
    ReportTemplate,
)

reports = bind_entity(ANALYTICS_REPORTS)
templates = bind_entity(REPORT_TEMPLATES)
schedules = bind_entity(REPORT_SCHEDULES)
executions = bind_entity(REPORT_EXECUTIONS)
performance_metrics = bind_entity(PERFORMANCE_METRICS)

__all__ = [
    "AnalyticsReport",
    "PerformanceMetric",
    "ReportExecution",
    "ReportSchedule",
    "ReportTemplate",
    "executions",
    "performance_metrics",
    "reports",
    "schedules",
    "templates",
]
