-- Compliance: PHI disclosure accounting, reports, checklists, violations, remediation,
-- policy acknowledgements, retention policies, consent forms and signatures.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE phi_disclosures (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id                 uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    disclosure_type            varchar(50) NOT NULL CHECK (disclosure_type IN ('TREATMENT','PAYMENT','HEALTHCARE_OPERATIONS','AUTHORIZATION','REQUIRED_BY_LAW','PUBLIC_HEALTH','RESEARCH')),
    purpose                    varchar(50) NOT NULL CHECK (purpose IN ('TREATMENT','PAYMENT','OPERATIONS','LEGAL_REQUIREMENT','PUBLIC_HEALTH','RESEARCH','PATIENT_REQUEST')),
    method                     varchar(50) NOT NULL CHECK (method IN ('VERBAL','WRITTEN','ELECTRONIC','FAX','PHONE')),
    disclosure_date            timestamptz NOT NULL,
    information_disclosed      jsonb NOT NULL,
    minimum_necessary          text NOT NULL,
    recipient_type             varchar(50) NOT NULL CHECK (recipient_type IN ('HEALTHCARE_PROVIDER','INSURANCE','PARENT_GUARDIAN','SCHOOL_OFFICIAL','GOVERNMENT_AGENCY','RESEARCHER','OTHER')),
    recipient_name             varchar(255) NOT NULL,
    recipient_organization     varchar(255),
    recipient_address          text,
    recipient_phone            varchar(50),
    recipient_email            varchar(255),
    authorization_obtained     boolean NOT NULL,
    authorization_date         timestamptz,
    authorization_expiry_date  timestamptz,
    patient_requested          boolean NOT NULL,
    disclosed_by               uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    follow_up_required         boolean NOT NULL DEFAULT false,
    follow_up_completed        boolean NOT NULL DEFAULT false,
    follow_up_date             timestamptz,
    notes                      text,
    version                    integer NOT NULL DEFAULT 1,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    created_by                 varchar(128),
    updated_by                 varchar(128),
    deleted_at                 timestamptz,
    CHECK (NOT follow_up_required OR follow_up_date IS NOT NULL)
);
CREATE INDEX phi_disclosures_student_idx ON phi_disclosures (student_id, disclosure_date DESC);
CREATE INDEX phi_disclosures_purpose_idx ON phi_disclosures (purpose, disclosure_date);
CREATE INDEX phi_disclosures_disclosed_by_idx ON phi_disclosures (disclosed_by);

CREATE TABLE phi_disclosure_audits (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    disclosure_id  uuid NOT NULL REFERENCES phi_disclosures (id) ON DELETE RESTRICT,
    action         varchar(50) NOT NULL,
    changes        jsonb,
    performed_by   uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    ip_address     varchar(45),
    user_agent     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX phi_disclosure_audits_disclosure_id_idx ON phi_disclosure_audits (disclosure_id);
CREATE INDEX phi_disclosure_audits_performed_by_idx ON phi_disclosure_audits (performed_by);

CREATE TABLE compliance_reports (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    report_type      varchar(50) NOT NULL CHECK (report_type IN ('HIPAA','FERPA','PRIVACY','SECURITY','BREACH','RISK_ASSESSMENT','TRAINING','AUDIT')),
    title            varchar(200) NOT NULL,
    description      text,
    status           varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','IN_PROGRESS','COMPLIANT','NON_COMPLIANT','NEEDS_REVIEW')),
    period           varchar(50) NOT NULL,
    findings         jsonb,
    recommendations  jsonb,
    due_date         timestamptz,
    submitted_at     timestamptz,
    submitted_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    reviewed_at      timestamptz,
    reviewed_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_by_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version          integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compliance_reports_submitted_by_idx ON compliance_reports (submitted_by);
CREATE INDEX compliance_reports_reviewed_by_idx ON compliance_reports (reviewed_by);
CREATE INDEX compliance_reports_created_by_id_idx ON compliance_reports (created_by_id);

CREATE TABLE compliance_checklist_items (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    requirement   varchar(500) NOT NULL,
    description   text,
    category      varchar(50) NOT NULL CHECK (category IN ('HIPAA_PRIVACY','HIPAA_SECURITY','FERPA','MEDICATION','SAFETY','TRAINING','DOCUMENTATION')),
    status        varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','IN_PROGRESS','COMPLETED','NOT_APPLICABLE','FAILED')),
    evidence      text,
    notes         text,
    due_date      timestamptz,
    completed_at  timestamptz,
    completed_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    report_id     uuid REFERENCES compliance_reports (id) ON DELETE SET NULL,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compliance_checklist_items_completed_by_idx ON compliance_checklist_items (completed_by);
CREATE INDEX compliance_checklist_items_report_id_idx ON compliance_checklist_items (report_id);

CREATE TABLE compliance_violations (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    violation_type            varchar(50) NOT NULL CHECK (violation_type IN ('HIPAA_BREACH','FERPA_VIOLATION','UNAUTHORIZED_ACCESS','DATA_LEAK','POLICY_VIOLATION','PROCEDURE_VIOLATION','TRAINING_DEFICIENCY')),
    title                     varchar(200) NOT NULL,
    description               text NOT NULL,
    severity                  varchar(50) NOT NULL CHECK (severity IN ('LOW','MEDIUM','HIGH','CRITICAL')),
    status                    varchar(50) NOT NULL DEFAULT 'REPORTED' CHECK (status IN ('REPORTED','INVESTIGATING','REMEDIATION_IN_PROGRESS','RESOLVED','CLOSED')),
    reported_by               uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    discovered_at             timestamptz NOT NULL,
    affected_students         uuid[],
    affected_data_categories  text[],
    root_cause                text,
    assigned_to               uuid REFERENCES users (id) ON DELETE SET NULL,
    resolution_notes          text,
    resolved_at               timestamptz,
    version                   integer NOT NULL DEFAULT 1,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    deleted_at                timestamptz
);
CREATE INDEX compliance_violations_reported_by_idx ON compliance_violations (reported_by);
CREATE INDEX compliance_violations_assigned_to_idx ON compliance_violations (assigned_to);

CREATE TABLE remediation_actions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    violation_id          uuid NOT NULL REFERENCES compliance_violations (id) ON DELETE RESTRICT,
    action                text NOT NULL,
    priority              varchar(50) NOT NULL DEFAULT 'MEDIUM' CHECK (priority IN ('LOW','MEDIUM','HIGH','URGENT')),
    status                varchar(50) NOT NULL DEFAULT 'PLANNED' CHECK (status IN ('PLANNED','IN_PROGRESS','COMPLETED','VERIFIED','DEFERRED')),
    assigned_to           uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    due_date              timestamptz NOT NULL,
    implementation_notes  text,
    verification_notes    text,
    completed_at          timestamptz,
    verified_by           uuid REFERENCES users (id) ON DELETE SET NULL,
    verified_at           timestamptz,
    version               integer NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX remediation_actions_violation_id_idx ON remediation_actions (violation_id);
CREATE INDEX remediation_actions_assigned_to_idx ON remediation_actions (assigned_to);
CREATE INDEX remediation_actions_verified_by_idx ON remediation_actions (verified_by);

CREATE TABLE policy_acknowledgments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    policy_id        uuid NOT NULL REFERENCES policy_documents (id) ON DELETE RESTRICT,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    acknowledged_at  timestamptz NOT NULL DEFAULT now(),
    ip_address       varchar(45),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (policy_id, user_id)
);
CREATE INDEX policy_acknowledgments_user_id_idx ON policy_acknowledgments (user_id);

CREATE TABLE data_retention_policies (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    category               varchar(50) NOT NULL CHECK (category IN ('STUDENT_RECORDS','HEALTH_RECORDS','MEDICATION_LOGS','AUDIT_LOGS','CONSENT_FORMS','INCIDENT_REPORTS','TRAINING_RECORDS')),
    description            text NOT NULL,
    retention_period_days  integer NOT NULL CHECK (retention_period_days >= 1),
    legal_basis            text NOT NULL,
    status                 varchar(50) NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','INACTIVE','UNDER_REVIEW')),
    auto_delete            boolean NOT NULL DEFAULT false,
    last_reviewed_at       timestamptz,
    last_reviewed_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX data_retention_policies_last_reviewed_by_idx ON data_retention_policies (last_reviewed_by);

CREATE TABLE consent_forms (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type          varchar(50) NOT NULL CHECK (type IN ('MEDICATION_ADMINISTRATION','PHOTO_RELEASE','FIELD_TRIP','EMERGENCY_TREATMENT','DATA_SHARING','RESEARCH')),
    title         varchar(255) NOT NULL,
    description   text NOT NULL,
    content       text NOT NULL,
    form_version  varchar(20) NOT NULL DEFAULT '1.0',
    is_active     boolean NOT NULL DEFAULT true,
    expires_at    timestamptz,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consent_signatures (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consent_form_id  uuid NOT NULL REFERENCES consent_forms (id) ON DELETE RESTRICT,
    student_id       uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    signed_by        varchar(255) NOT NULL,
    relationship     varchar(100) NOT NULL,
    signature_data   text,
    ip_address       varchar(45),
    signed_at        timestamptz NOT NULL DEFAULT now(),
    withdrawn_at     timestamptz,
    withdrawn_by     varchar(255),
    version          integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    UNIQUE (consent_form_id, student_id)
);
CREATE INDEX consent_signatures_student_idx ON consent_signatures (student_id, signed_at DESC);

GRANT SELECT, INSERT, UPDATE ON phi_disclosures, phi_disclosure_audits, compliance_violations, consent_signatures TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON compliance_reports, compliance_checklist_items, remediation_actions, policy_acknowledgments, data_retention_policies, consent_forms TO wxdata_app;
