-- Analytics reports, report templates, schedules, executions, performance metrics.

CREATE TABLE analytics_reports (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    report_type        varchar(50) NOT NULL CHECK (report_type IN ('COMPLIANCE','HEALTH_TRENDS','INCIDENT_ANALYSIS','MEDICATION_USAGE','APPOINTMENT_UTILIZATION','STUDENT_HEALTH_OVERVIEW','NURSE_WORKLOAD','EQUIPMENT_MAINTENANCE','BUDGET_ANALYSIS','CUSTOM')),
    title              varchar(255) NOT NULL,
    description        text,
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL,
    generated_date     timestamptz NOT NULL,
    school_id          uuid REFERENCES schools (id) ON DELETE SET NULL,
    school_name        varchar(255),
    summary            jsonb NOT NULL,
    sections           jsonb NOT NULL DEFAULT '[]',
    findings           jsonb NOT NULL DEFAULT '[]',
    recommendations    jsonb NOT NULL DEFAULT '[]',
    status             varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','GENERATING','COMPLETED','FAILED','CANCELLED')),
    format             varchar(50) NOT NULL CHECK (format IN ('PDF','CSV','EXCEL','JSON','HTML')),
    file_url           varchar(255),
    file_size          integer CHECK (file_size >= 0),
    generated_by       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    reviewed_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    reviewed_at        timestamptz,
    approved_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    approval_date      timestamptz,
    distribution_list  jsonb,
    sent_at            timestamptz,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end >= period_start)
);
CREATE INDEX analytics_reports_school_id_idx ON analytics_reports (school_id);
CREATE INDEX analytics_reports_generated_by_idx ON analytics_reports (generated_by);
CREATE INDEX analytics_reports_reviewed_by_idx ON analytics_reports (reviewed_by);
CREATE INDEX analytics_reports_approved_by_idx ON analytics_reports (approved_by);

CREATE TABLE report_templates (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                   varchar(255) NOT NULL,
    description            text,
    report_type            varchar(50) NOT NULL CHECK (report_type IN ('health_trends','medication_usage','incident_statistics','attendance_correlation','compliance','dashboard','performance','custom')),
    query_configuration    jsonb,
    default_output_format  varchar(50) NOT NULL DEFAULT 'pdf' CHECK (default_output_format IN ('pdf','excel','csv','json')),
    format_options         jsonb,
    is_active              boolean NOT NULL DEFAULT true,
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    created_by             varchar(128),
    updated_by             varchar(128)
);

CREATE TABLE report_schedules (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name               varchar(255) NOT NULL,
    report_type        varchar(50) NOT NULL CHECK (report_type IN ('HEALTH_REPORT','MEDICATION_REPORT','INCIDENT_REPORT','COMPLIANCE_REPORT','ANALYTICS_REPORT')),
    template_id        uuid REFERENCES report_templates (id) ON DELETE SET NULL,
    frequency          varchar(50) NOT NULL CHECK (frequency IN ('daily','weekly','monthly','quarterly','custom')),
    cron_expression    varchar(100),
    output_format      varchar(50) NOT NULL DEFAULT 'PDF' CHECK (output_format IN ('PDF','CSV','XLSX','JSON')),
    parameters         jsonb,
    recipients         jsonb NOT NULL DEFAULT '[]',
    is_active          boolean NOT NULL DEFAULT true,
    last_executed_at   timestamptz,
    next_execution_at  timestamptz,
    execution_count    integer NOT NULL DEFAULT 0 CHECK (execution_count >= 0),
    failure_count      integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    last_error         text,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         varchar(128),
    updated_by         varchar(128)
);
CREATE INDEX report_schedules_template_id_idx ON report_schedules (template_id);

CREATE TABLE report_executions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id        uuid REFERENCES report_schedules (id) ON DELETE SET NULL,
    report_type        varchar(50) NOT NULL CHECK (report_type IN ('HEALTH_REPORT','MEDICATION_REPORT','INCIDENT_REPORT','COMPLIANCE_REPORT','ANALYTICS_REPORT')),
    output_format      varchar(50) NOT NULL CHECK (output_format IN ('PDF','CSV','XLSX','JSON')),
    parameters         jsonb,
    status             varchar(50) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','generating','completed','failed')),
    file_path          varchar(500),
    download_url       varchar(500),
    file_size          bigint CHECK (file_size >= 0),
    record_count       integer CHECK (record_count >= 0),
    execution_time_ms  integer CHECK (execution_time_ms >= 0),
    error              text,
    executed_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    started_at         timestamptz NOT NULL,
    completed_at       timestamptz,
    expires_at         timestamptz,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (completed_at IS NULL OR completed_at >= started_at)
);
CREATE INDEX report_executions_started_at_idx ON report_executions (started_at);
CREATE INDEX report_executions_schedule_id_idx ON report_executions (schedule_id);
CREATE INDEX report_executions_executed_by_idx ON report_executions (executed_by);

CREATE TABLE performance_metrics (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    metric_type  varchar(50) NOT NULL CHECK (metric_type IN ('CPU_USAGE','MEMORY_USAGE','DISK_USAGE','API_RESPONSE_TIME','DATABASE_QUERY_TIME','ACTIVE_USERS','ERROR_RATE','REQUEST_COUNT')),
    value        numeric(10,2) NOT NULL,
    unit         varchar(50),
    tags         jsonb,
    recorded_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX performance_metrics_metric_type_idx ON performance_metrics (metric_type, recorded_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON analytics_reports, report_templates, report_schedules, report_executions, performance_metrics TO wxdata_app;
