-- Operations and security: configuration history, backups, maintenance, security
-- incidents, threat detections, webhooks, integration logs, training modules, licenses.

CREATE TABLE configuration_history (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    config_key        varchar(100) NOT NULL,
    old_value         text,
    new_value         text NOT NULL,
    changed_by        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    configuration_id  uuid NOT NULL REFERENCES system_configurations (id) ON DELETE RESTRICT,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX configuration_history_changed_by_idx ON configuration_history (changed_by);
CREATE INDEX configuration_history_configuration_id_idx ON configuration_history (configuration_id);

CREATE TABLE backup_logs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type          varchar(50) NOT NULL CHECK (type IN ('AUTOMATIC','MANUAL','SCHEDULED')),
    status        varchar(50) NOT NULL CHECK (status IN ('IN_PROGRESS','COMPLETED','FAILED')),
    file_name     varchar(255),
    file_size     bigint CHECK (file_size >= 0),
    location      text,
    triggered_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    error         text,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (completed_at IS NULL OR completed_at >= started_at)
);
CREATE INDEX backup_logs_triggered_by_idx ON backup_logs (triggered_by);

CREATE TABLE maintenance_logs (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    inventory_item_id      uuid NOT NULL REFERENCES inventory_items (id) ON DELETE RESTRICT,
    type                   varchar(50) NOT NULL CHECK (type IN ('CALIBRATION','REPAIR','INSPECTION','CLEANING','REPLACEMENT','UPGRADE')),
    description            text NOT NULL,
    performed_by_id        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    cost                   numeric(10,2) CHECK (cost >= 0),
    next_maintenance_date  timestamptz,
    vendor                 varchar(255),
    notes                  text,
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX maintenance_logs_inventory_item_id_idx ON maintenance_logs (inventory_item_id);
CREATE INDEX maintenance_logs_performed_by_id_idx ON maintenance_logs (performed_by_id);

CREATE TABLE security_incidents (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type                 varchar(50) NOT NULL CHECK (type IN ('unauthorized_access','brute_force_attack','suspicious_activity','data_breach_attempt','privilege_escalation','sql_injection_attempt','xss_attempt','account_takeover','malware_detected','ddos_attempt','policy_violation','other')),
    severity             varchar(20) NOT NULL CHECK (severity IN ('low','medium','high','critical')),
    status               varchar(20) NOT NULL DEFAULT 'detected' CHECK (status IN ('detected','investigating','contained','resolved','false_positive')),
    title                varchar(255) NOT NULL,
    description          text NOT NULL,
    user_id              uuid REFERENCES users (id) ON DELETE SET NULL,
    ip_address           varchar(64),
    user_agent           text,
    resource_accessed    varchar(255),
    detected_at          timestamptz NOT NULL,
    detection_method     varchar(255) NOT NULL,
    indicators           jsonb NOT NULL,
    impact               text,
    assigned_to          uuid REFERENCES users (id) ON DELETE SET NULL,
    resolved_at          timestamptz,
    resolution           text,
    preventive_measures  jsonb,
    metadata             jsonb,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_incidents_type_idx ON security_incidents (type, severity, status);
CREATE INDEX security_incidents_detected_at_idx ON security_incidents (detected_at);
CREATE INDEX security_incidents_user_id_idx ON security_incidents (user_id);
CREATE INDEX security_incidents_assigned_to_idx ON security_incidents (assigned_to);

CREATE TABLE threat_detections (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    threat_type  varchar(100) NOT NULL,
    severity     varchar(50) NOT NULL,
    source       varchar(255) NOT NULL,
    details      jsonb NOT NULL,
    is_resolved  boolean NOT NULL DEFAULT false,
    resolved_at  timestamptz,
    resolved_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threat_detections_resolved_by_idx ON threat_detections (resolved_by);

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url         varchar(500) NOT NULL,
    events      text[] NOT NULL,
    is_active   boolean NOT NULL DEFAULT true,
    secret      varchar(255),
    headers     text,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_by  varchar(128),
    updated_by  varchar(128)
);

CREATE TABLE integration_logs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_id     uuid REFERENCES integration_configs (id) ON DELETE SET NULL,
    integration_type   varchar(50) NOT NULL,
    action             varchar(50) NOT NULL,
    status             varchar(20) NOT NULL,
    records_processed  integer CHECK (records_processed >= 0),
    records_succeeded  integer CHECK (records_succeeded >= 0),
    records_failed     integer CHECK (records_failed >= 0),
    started_at         timestamptz,
    completed_at       timestamptz,
    duration           integer CHECK (duration >= 0),
    error_message      text,
    details            jsonb,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integration_logs_integration_id_idx ON integration_logs (integration_id);

CREATE TABLE training_modules (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title             varchar(255) NOT NULL,
    description       text,
    content           text NOT NULL,
    duration          integer CHECK (duration >= 0),
    category          varchar(50) NOT NULL CHECK (category IN ('HIPAA_COMPLIANCE','MEDICATION_MANAGEMENT','EMERGENCY_PROCEDURES','SYSTEM_TRAINING','SAFETY_PROTOCOLS','DATA_SECURITY')),
    is_required       boolean NOT NULL DEFAULT false,
    display_order     integer NOT NULL DEFAULT 0,
    attachments       text[],
    completion_count  integer NOT NULL DEFAULT 0 CHECK (completion_count >= 0),
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE licenses (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type            varchar(50) NOT NULL DEFAULT 'TRIAL' CHECK (type IN ('TRIAL','BASIC','PROFESSIONAL','ENTERPRISE')),
    status          varchar(50) NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','EXPIRED','SUSPENDED','CANCELLED')),
    max_users       integer CHECK (max_users >= 0),
    max_schools     integer CHECK (max_schools >= 0),
    features        text[] NOT NULL,
    issued_to       varchar(255),
    district_id     uuid REFERENCES districts (id) ON DELETE SET NULL,
    notes           text,
    issued_at       timestamptz NOT NULL,
    activated_at    timestamptz,
    expires_at      timestamptz,
    deactivated_at  timestamptz,
    license_key     varchar(100) NOT NULL UNIQUE,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX licenses_district_id_idx ON licenses (district_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON configuration_history, backup_logs, maintenance_logs, security_incidents, threat_detections, webhooks, integration_logs, training_modules, licenses TO wxdata_app;
