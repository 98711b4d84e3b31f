-- Reference and configuration data (no student data).
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE budget_categories (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              varchar(255) NOT NULL,
    description       text,
    fiscal_year       integer NOT NULL CHECK (fiscal_year >= 1900 AND fiscal_year <= 9999),
    allocated_amount  numeric(10,2) NOT NULL CHECK (allocated_amount >= 0),
    spent_amount      numeric(10,2) NOT NULL DEFAULT 0,
    is_active         boolean NOT NULL DEFAULT true,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_rules (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                     varchar(200) NOT NULL UNIQUE,
    description              text,
    category                 varchar(50) NOT NULL CHECK (category IN ('HEALTH','SAFETY','COMPLIANCE','SYSTEM','MEDICATION','APPOINTMENT')),
    severity                 varchar(50) NOT NULL CHECK (severity IN ('INFO','LOW','MEDIUM','HIGH','CRITICAL','EMERGENCY')),
    is_active                boolean NOT NULL DEFAULT true,
    priority                 integer NOT NULL DEFAULT 0,
    trigger_conditions       jsonb NOT NULL,
    notification_channels    jsonb NOT NULL DEFAULT '[]',
    target_roles             text[],
    target_users             uuid[],
    school_id                uuid REFERENCES schools (id) ON DELETE SET NULL,
    district_id              uuid REFERENCES districts (id) ON DELETE SET NULL,
    auto_escalate_after      integer CHECK (auto_escalate_after >= 0),
    cooldown_period          integer CHECK (cooldown_period >= 0),
    requires_acknowledgment  boolean NOT NULL DEFAULT false,
    expires_after            integer CHECK (expires_after >= 0),
    metadata                 jsonb,
    last_triggered           timestamptz,
    trigger_count            integer DEFAULT 0 CHECK (trigger_count >= 0),
    version                  integer NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    created_by               varchar(128),
    updated_by               varchar(128)
);
CREATE INDEX alert_rules_school_id_idx ON alert_rules (school_id);
CREATE INDEX alert_rules_district_id_idx ON alert_rules (district_id);

CREATE TABLE message_templates (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           varchar(100) NOT NULL,
    subject        varchar(255),
    content        text NOT NULL,
    type           varchar(50) NOT NULL CHECK (type IN ('EMAIL','SMS','PUSH_NOTIFICATION','VOICE')),
    category       varchar(50) NOT NULL CHECK (category IN ('APPOINTMENT','MEDICATION','EMERGENCY','NOTIFICATION','REMINDER')),
    variables      text[] NOT NULL DEFAULT '{}',
    is_active      boolean NOT NULL DEFAULT true,
    created_by_id  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX message_templates_created_by_id_idx ON message_templates (created_by_id);

CREATE TABLE policy_documents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title           varchar(200) NOT NULL,
    category        varchar(50) NOT NULL CHECK (category IN ('HIPAA_PRIVACY','HIPAA_SECURITY','FERPA','DATA_RETENTION','INCIDENT_RESPONSE','ACCESS_CONTROL','TRAINING')),
    content         text NOT NULL,
    policy_version  varchar(20) NOT NULL DEFAULT '1.0',
    effective_date  timestamptz NOT NULL,
    review_date     timestamptz,
    status          varchar(50) NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT','ACTIVE','ARCHIVED','SUPERSEDED')),
    approved_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    approved_at     timestamptz,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX policy_documents_approved_by_idx ON policy_documents (approved_by);

CREATE TABLE system_configurations (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key               varchar(100) NOT NULL UNIQUE,
    value             text NOT NULL,
    category          varchar(50) NOT NULL DEFAULT 'GENERAL' CHECK (category IN ('GENERAL','SECURITY','NOTIFICATION','INTEGRATION','BACKUP','PERFORMANCE','HEALTHCARE','MEDICATION','APPOINTMENTS','UI','QUERY','FILE_UPLOAD','RATE_LIMITING','SESSION','EMAIL')),
    value_type        varchar(50) NOT NULL DEFAULT 'STRING' CHECK (value_type IN ('STRING','NUMBER','BOOLEAN','JSON','ARRAY','DATE','TIME','DATETIME','EMAIL','URL','COLOR','ENUM')),
    sub_category      varchar(100),
    description       text,
    default_value     text,
    valid_values      text[],
    min_value         numeric(10,2),
    max_value         numeric(10,2),
    is_public         boolean NOT NULL DEFAULT false,
    is_editable       boolean NOT NULL DEFAULT true,
    requires_restart  boolean NOT NULL DEFAULT false,
    scope             varchar(50) NOT NULL DEFAULT 'SYSTEM' CHECK (scope IN ('SYSTEM','DISTRICT','SCHOOL','USER')),
    scope_id          uuid,
    tags              text[],
    sort_order        integer NOT NULL DEFAULT 0,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        varchar(128),
    updated_by        varchar(128)
);

CREATE TABLE integration_configs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              varchar(100) NOT NULL,
    type              varchar(50) NOT NULL CHECK (type IN ('SIS','EHR','PHARMACY','LABORATORY','INSURANCE','PARENT_PORTAL','HEALTH_APP','GOVERNMENT_REPORTING')),
    status            varchar(50) NOT NULL DEFAULT 'INACTIVE' CHECK (status IN ('INACTIVE','ACTIVE','TESTING','SYNCING','ERROR')),
    endpoint          text,
    username          varchar(100),
    settings          jsonb,
    authentication    jsonb,
    sync_frequency    integer CHECK (sync_frequency >= 0),
    is_active         boolean NOT NULL DEFAULT true,
    last_sync_at      timestamptz,
    last_sync_status  varchar(20),
    api_key           text,
    password          text,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        varchar(128),
    updated_by        varchar(128)
);

GRANT SELECT, INSERT, UPDATE ON message_templates TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON budget_categories, alert_rules, policy_documents, system_configurations, integration_configs TO wxdata_app;
