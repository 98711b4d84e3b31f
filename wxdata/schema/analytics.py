"""Analytics and reports: generated analytics reports, report templates, schedules and
executions, and system performance metrics (aggregates; no per-student rows)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from wxdata.schema.base import Authored, Versioned
from wxdata.schema.rules import not_before
from wxdata.schema.spec import (
    DataClass,
    col,
    created_at,
    entity,
    pk,
    row,
)

G = DataClass.GENERAL
ANALYTICS_TYPES = ("COMPLIANCE", "HEALTH_TRENDS", "INCIDENT_ANALYSIS", "MEDICATION_USAGE",
                   "APPOINTMENT_UTILIZATION", "STUDENT_HEALTH_OVERVIEW", "NURSE_WORKLOAD",
                   "EQUIPMENT_MAINTENANCE", "BUDGET_ANALYSIS", "CUSTOM")
ANALYTICS_FORMATS = ("PDF", "CSV", "EXCEL", "JSON", "HTML")
ANALYTICS_STATUSES = ("PENDING", "GENERATING", "COMPLETED", "FAILED", "CANCELLED")


@row
class AnalyticsReport(Versioned):
    """A generated analytics report over a period, for a school or the district."""

    id: UUID = pk()
    report_type: str = col(G, max_length=50, choices=ANALYTICS_TYPES)
    title: str = col(G, max_length=255)
    description: str | None = col(G, sql="text")
    period_start: datetime = col(G)
    period_end: datetime = col(G)
    generated_date: datetime = col(G)
    school_id: UUID | None = col(G, references="schools")
    school_name: str | None = col(G, max_length=255)
    summary: dict[str, Any] = col(G)
    sections: list[Any] = col(G, has_default=True)
    findings: list[Any] = col(G, has_default=True)
    recommendations: list[Any] = col(G, has_default=True)
    status: str = col(G, max_length=50, choices=ANALYTICS_STATUSES, has_default=True)
    format: str = col(G, max_length=50, choices=ANALYTICS_FORMATS)
    file_url: str | None = col(G, max_length=255)
    file_size: int | None = col(G, minimum=0)
    generated_by: UUID = col(G, references="users")
    reviewed_by: UUID | None = col(G, references="users")
    reviewed_at: datetime | None = col(G)
    approved_by: UUID | None = col(G, references="users")
    approval_date: datetime | None = col(G)
    distribution_list: list[Any] | None = col(G)
    sent_at: datetime | None = col(G)


ANALYTICS_REPORTS = entity(AnalyticsReport, table="analytics_reports", school="school_id",
                           validators=(not_before("period_end", "period_start"),))

TEMPLATE_TYPES = ("health_trends", "medication_usage", "incident_statistics",
                  "attendance_correlation", "compliance", "dashboard", "performance", "custom")
TEMPLATE_FORMATS = ("pdf", "excel", "csv", "json")


@row
class ReportTemplate(Authored):
    """A reusable report definition: query configuration and default output format."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    description: str | None = col(G, sql="text")
    report_type: str = col(G, max_length=50, choices=TEMPLATE_TYPES)
    query_configuration: dict[str, Any] | None = col(G)
    default_output_format: str = col(G, max_length=50, choices=TEMPLATE_FORMATS, has_default=True)
    format_options: dict[str, Any] | None = col(G)
    is_active: bool = col(G, has_default=True)


REPORT_TEMPLATES = entity(ReportTemplate, table="report_templates")

EXECUTION_TYPES = ("HEALTH_REPORT", "MEDICATION_REPORT", "INCIDENT_REPORT", "COMPLIANCE_REPORT",
                   "ANALYTICS_REPORT")
OUTPUT_FORMATS = ("PDF", "CSV", "XLSX", "JSON")
EXECUTION_STATUSES = ("pending", "generating", "completed", "failed")
FREQUENCIES = ("daily", "weekly", "monthly", "quarterly", "custom")


@row
class ReportSchedule(Authored):
    """A recurring report run and who receives it."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    report_type: str = col(G, max_length=50, choices=EXECUTION_TYPES)
    template_id: UUID | None = col(G, references="report_templates")
    frequency: str = col(G, max_length=50, choices=FREQUENCIES)
    cron_expression: str | None = col(G, max_length=100)
    output_format: str = col(G, max_length=50, choices=OUTPUT_FORMATS, has_default=True)
    parameters: dict[str, Any] | None = col(G)
    recipients: list[Any] = col(G, has_default=True)
    is_active: bool = col(G, has_default=True)
    last_executed_at: datetime | None = col(G)
    next_execution_at: datetime | None = col(G)
    execution_count: int = col(G, minimum=0, has_default=True)
    failure_count: int = col(G, minimum=0, has_default=True)
    last_error: str | None = col(G, sql="text")


REPORT_SCHEDULES = entity(ReportSchedule, table="report_schedules")


@row
class ReportExecution(Versioned):
    """One run of a report (scheduled or ad hoc) and its output file."""

    id: UUID = pk()
    schedule_id: UUID | None = col(G, references="report_schedules")
    report_type: str = col(G, max_length=50, choices=EXECUTION_TYPES)
    output_format: str = col(G, max_length=50, choices=OUTPUT_FORMATS)
    parameters: dict[str, Any] | None = col(G)
    status: str = col(G, max_length=50, choices=EXECUTION_STATUSES, has_default=True)
    file_path: str | None = col(G, max_length=500)
    download_url: str | None = col(G, max_length=500)
    file_size: int | None = col(G, sql="bigint", minimum=0)
    record_count: int | None = col(G, minimum=0)
    execution_time_ms: int | None = col(G, minimum=0)
    error: str | None = col(G, sql="text")
    executed_by: UUID | None = col(G, references="users")
    started_at: datetime = col(G)
    completed_at: datetime | None = col(G)
    expires_at: datetime | None = col(G)


REPORT_EXECUTIONS = entity(ReportExecution, table="report_executions",
                           validators=(not_before("completed_at", "started_at"),))

METRIC_TYPES = ("CPU_USAGE", "MEMORY_USAGE", "DISK_USAGE", "API_RESPONSE_TIME",
                "DATABASE_QUERY_TIME", "ACTIVE_USERS", "ERROR_RATE", "REQUEST_COUNT")


@row
class PerformanceMetric:
    """A system performance sample (immutable)."""

    id: UUID = pk()
    metric_type: str = col(G, max_length=50, choices=METRIC_TYPES)
    value: Decimal = col(G, sql="numeric(10,2)")
    unit: str | None = col(G, max_length=50)
    tags: dict[str, Any] | None = col(G)
    recorded_at: datetime = col(G)
    created_at: datetime = created_at()


PERFORMANCE_METRICS = entity(PerformanceMetric, table="performance_metrics")
