-- Alerts (PHI), alert preferences, delivery logs, push notifications (PHI), device tokens.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE alerts (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    definition_id            uuid REFERENCES alert_rules (id) ON DELETE SET NULL,
    severity                 varchar(50) NOT NULL CHECK (severity IN ('INFO','LOW','MEDIUM','HIGH','CRITICAL','EMERGENCY')),
    category                 varchar(50) NOT NULL CHECK (category IN ('HEALTH','SAFETY','COMPLIANCE','SYSTEM','MEDICATION','APPOINTMENT')),
    title                    varchar(500) NOT NULL,
    message                  text NOT NULL,
    student_id               uuid REFERENCES students (id) ON DELETE RESTRICT,
    user_id                  uuid REFERENCES users (id) ON DELETE SET NULL,
    school_id                uuid REFERENCES schools (id) ON DELETE SET NULL,
    status                   varchar(50) NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','ACKNOWLEDGED','RESOLVED','EXPIRED','DISMISSED')),
    metadata                 jsonb,
    acknowledged_at          timestamptz,
    acknowledged_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    resolved_at              timestamptz,
    resolved_by              uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at               timestamptz,
    auto_escalate_after      integer CHECK (auto_escalate_after >= 0),
    escalation_level         integer DEFAULT 0 CHECK (escalation_level >= 0),
    requires_acknowledgment  boolean NOT NULL DEFAULT false,
    version                  integer NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    created_by               varchar(128),
    updated_by               varchar(128),
    deleted_at               timestamptz
);
CREATE INDEX alerts_student_idx ON alerts (student_id, created_at DESC);
CREATE INDEX alerts_status_idx ON alerts (status, severity, created_at);
CREATE INDEX alerts_definition_id_idx ON alerts (definition_id);
CREATE INDEX alerts_user_id_idx ON alerts (user_id);
CREATE INDEX alerts_school_id_idx ON alerts (school_id);
CREATE INDEX alerts_acknowledged_by_idx ON alerts (acknowledged_by);
CREATE INDEX alerts_resolved_by_idx ON alerts (resolved_by);

CREATE TABLE alert_preferences (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    school_id          uuid REFERENCES schools (id) ON DELETE SET NULL,
    channels           text[] NOT NULL DEFAULT '{WEBSOCKET,EMAIL}' CHECK (channels <@ ARRAY['WEBSOCKET','EMAIL','SMS','PUSH_NOTIFICATION']::text[]),
    severity_filter    text[] NOT NULL DEFAULT '{INFO,LOW,MEDIUM,HIGH,CRITICAL,EMERGENCY}' CHECK (severity_filter <@ ARRAY['INFO','LOW','MEDIUM','HIGH','CRITICAL','EMERGENCY']::text[]),
    category_filter    text[] NOT NULL DEFAULT '{HEALTH,SAFETY,COMPLIANCE,SYSTEM,MEDICATION,APPOINTMENT}' CHECK (category_filter <@ ARRAY['HEALTH','SAFETY','COMPLIANCE','SYSTEM','MEDICATION','APPOINTMENT']::text[]),
    quiet_hours_start  varchar(5),
    quiet_hours_end    varchar(5),
    is_active          boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, school_id)
);
CREATE INDEX alert_preferences_school_id_idx ON alert_preferences (school_id);

CREATE TABLE delivery_logs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_id       uuid NOT NULL REFERENCES alerts (id) ON DELETE RESTRICT,
    channel        varchar(50) NOT NULL CHECK (channel IN ('email','sms','push','voice')),
    recipient_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    success        boolean NOT NULL DEFAULT false,
    attempt_count  integer NOT NULL DEFAULT 1 CHECK (attempt_count >= 0),
    last_attempt   timestamptz NOT NULL,
    delivered_at   timestamptz,
    error_message  text,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_logs_alert_id_idx ON delivery_logs (alert_id);
CREATE INDEX delivery_logs_recipient_id_idx ON delivery_logs (recipient_id);

CREATE TABLE push_notifications (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_ids               uuid[] NOT NULL,
    title                  varchar(255) NOT NULL,
    body                   text NOT NULL,
    category               varchar(50) NOT NULL CHECK (category IN ('MEDICATION','APPOINTMENT','INCIDENT','SCREENING','IMMUNIZATION','MESSAGE','EMERGENCY','REMINDER','ALERT','SYSTEM')),
    priority               varchar(50) NOT NULL DEFAULT 'NORMAL' CHECK (priority IN ('CRITICAL','HIGH','NORMAL','LOW')),
    data                   jsonb,
    actions                jsonb,
    image_url              varchar(255),
    icon_url               varchar(255),
    sound                  varchar(255),
    badge                  integer CHECK (badge >= 0),
    ttl                    integer CHECK (ttl >= 0),
    collapse_key           varchar(255),
    require_interaction    boolean NOT NULL DEFAULT false,
    silent                 boolean NOT NULL DEFAULT false,
    scheduled_for          timestamptz,
    expires_at             timestamptz,
    status                 varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','SCHEDULED','SENDING','DELIVERED','FAILED','EXPIRED')),
    sent_at                timestamptz,
    delivered_at           timestamptz,
    failed_at              timestamptz,
    delivery_results       jsonb NOT NULL DEFAULT '[]',
    total_recipients       integer NOT NULL DEFAULT 0 CHECK (total_recipients >= 0),
    successful_deliveries  integer NOT NULL DEFAULT 0 CHECK (successful_deliveries >= 0),
    failed_deliveries      integer NOT NULL DEFAULT 0 CHECK (failed_deliveries >= 0),
    clicked_count          integer NOT NULL DEFAULT 0 CHECK (clicked_count >= 0),
    dismissed_count        integer NOT NULL DEFAULT 0 CHECK (dismissed_count >= 0),
    retry_count            integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    max_retries            integer NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    next_retry_at          timestamptz,
    device_tokens          text,
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    created_by             varchar(128),
    updated_by             varchar(128),
    deleted_at             timestamptz
);
CREATE INDEX push_notifications_status_idx ON push_notifications (status, scheduled_for);

CREATE TABLE device_tokens (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    device_id            varchar(255) NOT NULL,
    platform             varchar(50) NOT NULL CHECK (platform IN ('FCM','APNS','WEB_PUSH','SMS','EMAIL')),
    device_name          varchar(255),
    device_model         varchar(255),
    os_version           varchar(255),
    app_version          varchar(255),
    is_active            boolean NOT NULL DEFAULT true,
    is_valid             boolean NOT NULL DEFAULT true,
    last_validated       timestamptz,
    invalid_reason       varchar(255),
    allow_notifications  boolean NOT NULL DEFAULT true,
    allow_sound          boolean NOT NULL DEFAULT true,
    allow_badge          boolean NOT NULL DEFAULT true,
    last_used_at         timestamptz,
    token                text NOT NULL,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, device_id)
);

GRANT SELECT, INSERT, UPDATE ON alerts, push_notifications TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_preferences, delivery_logs, device_tokens TO wxdata_app;
