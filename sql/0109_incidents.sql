-- Incident reports, witness statements and follow-up actions (PHI).
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE incident_reports (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id                  uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    reported_by_id              uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    type                        varchar(50) NOT NULL CHECK (type IN ('INJURY','ILLNESS','BEHAVIORAL','MEDICATION_ERROR','ALLERGIC_REACTION','EMERGENCY','SAFETY','OTHER')),
    severity                    varchar(50) NOT NULL CHECK (severity IN ('LOW','MEDIUM','HIGH','CRITICAL')),
    status                      varchar(50) NOT NULL DEFAULT 'PENDING_REVIEW' CHECK (status IN ('DRAFT','PENDING_REVIEW','UNDER_INVESTIGATION','REQUIRES_ACTION','RESOLVED','CLOSED')),
    description                 text NOT NULL,
    location                    varchar(255) NOT NULL,
    witnesses                   text[] NOT NULL DEFAULT '{}',
    actions_taken               text NOT NULL,
    parent_notified             boolean NOT NULL DEFAULT false,
    parent_notification_method  varchar(255),
    parent_notified_at          timestamptz,
    parent_notified_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    follow_up_required          boolean NOT NULL DEFAULT false,
    follow_up_notes             text,
    attachments                 text[] NOT NULL DEFAULT '{}',
    evidence_photos             text[] NOT NULL DEFAULT '{}',
    evidence_videos             text[] NOT NULL DEFAULT '{}',
    insurance_claim_number      varchar(255),
    insurance_claim_status      varchar(50) CHECK (insurance_claim_status IN ('NOT_FILED','FILED','PENDING','APPROVED','DENIED','CLOSED')),
    legal_compliance_status     varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (legal_compliance_status IN ('PENDING','COMPLIANT','NON_COMPLIANT','UNDER_REVIEW')),
    occurred_at                 timestamptz NOT NULL,
    version                     integer NOT NULL DEFAULT 1,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    created_by                  varchar(128),
    updated_by                  varchar(128),
    deleted_at                  timestamptz,
    CHECK (NOT parent_notified OR parent_notification_method IS NOT NULL)
);
CREATE INDEX incident_reports_student_idx ON incident_reports (student_id, occurred_at DESC);
CREATE INDEX incident_reports_severity_idx ON incident_reports (severity, occurred_at);
CREATE INDEX incident_reports_status_idx ON incident_reports (status);
CREATE INDEX incident_reports_reported_by_id_idx ON incident_reports (reported_by_id);
CREATE INDEX incident_reports_parent_notified_by_idx ON incident_reports (parent_notified_by);

CREATE TABLE witness_statements (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    incident_report_id  uuid NOT NULL REFERENCES incident_reports (id) ON DELETE RESTRICT,
    witness_name        varchar(255) NOT NULL,
    witness_type        varchar(50) NOT NULL CHECK (witness_type IN ('STAFF','STUDENT','PARENT','GUARDIAN','VISITOR','OTHER')),
    witness_contact     varchar(255),
    statement           text NOT NULL,
    verified            boolean NOT NULL DEFAULT false,
    verified_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    verified_at         timestamptz,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX witness_statements_incident_report_id_idx ON witness_statements (incident_report_id);
CREATE INDEX witness_statements_verified_by_idx ON witness_statements (verified_by);

CREATE TABLE follow_up_actions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    incident_report_id  uuid NOT NULL REFERENCES incident_reports (id) ON DELETE RESTRICT,
    action              text NOT NULL,
    due_date            timestamptz NOT NULL,
    priority            varchar(50) NOT NULL DEFAULT 'MEDIUM' CHECK (priority IN ('LOW','MEDIUM','HIGH','URGENT')),
    status              varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','IN_PROGRESS','COMPLETED','CANCELLED')),
    assigned_to         uuid REFERENCES users (id) ON DELETE SET NULL,
    completed_at        timestamptz,
    completed_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    notes               text,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX follow_up_actions_incident_report_id_idx ON follow_up_actions (incident_report_id);
CREATE INDEX follow_up_actions_assigned_to_idx ON follow_up_actions (assigned_to);
CREATE INDEX follow_up_actions_completed_by_idx ON follow_up_actions (completed_by);

GRANT SELECT, INSERT, UPDATE ON incident_reports, witness_statements, follow_up_actions TO wxdata_app;
