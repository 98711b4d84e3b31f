-- Synchronisation: SIS sessions and conflicts, offline sync queue and conflicts, sync state.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE sync_sessions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    config_id           uuid NOT NULL,
    started_at          timestamptz NOT NULL,
    completed_at        timestamptz,
    status              varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','IN_PROGRESS','COMPLETED','PARTIAL','FAILED')),
    direction           varchar(50) NOT NULL CHECK (direction IN ('PULL','PUSH','BIDIRECTIONAL')),
    stats               jsonb NOT NULL,
    entities            text[] NOT NULL,
    records_processed   integer NOT NULL DEFAULT 0 CHECK (records_processed >= 0),
    records_successful  integer NOT NULL DEFAULT 0 CHECK (records_successful >= 0),
    records_failed      integer NOT NULL DEFAULT 0 CHECK (records_failed >= 0),
    triggered_by        varchar(50) NOT NULL,
    completion_message  text,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sync_states (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    entity_type    varchar(100) NOT NULL,
    entity_id      uuid NOT NULL,
    last_sync_at   timestamptz NOT NULL,
    sync_status    varchar(50) NOT NULL,
    error_message  text,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (entity_type, entity_id)
);

CREATE TABLE sync_queue_items (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id            varchar(255) NOT NULL,
    user_id              uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    action_type          varchar(50) NOT NULL CHECK (action_type IN ('CREATE','UPDATE','DELETE','READ')),
    entity_type          varchar(50) NOT NULL CHECK (entity_type IN ('STUDENT','HEALTH_RECORD','MEDICATION','INCIDENT','VACCINATION','APPOINTMENT','SCREENING','ALLERGY','CHRONIC_CONDITION')),
    entity_id            varchar(255) NOT NULL,
    data                 jsonb NOT NULL,
    timestamp            timestamptz NOT NULL,
    synced_at            timestamptz,
    synced               boolean NOT NULL DEFAULT false,
    attempts             integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts         integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 0),
    last_error           text,
    conflict_detected    boolean NOT NULL DEFAULT false,
    conflict_resolution  varchar(50) CHECK (conflict_resolution IN ('CLIENT_WINS','SERVER_WINS','NEWEST_WINS','MERGE','MANUAL')),
    priority             varchar(50) NOT NULL DEFAULT 'NORMAL' CHECK (priority IN ('HIGH','NORMAL','LOW')),
    requires_online      boolean NOT NULL DEFAULT true,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE INDEX sync_queue_items_device_id_idx ON sync_queue_items (device_id, synced, priority);
CREATE INDEX sync_queue_items_user_id_idx ON sync_queue_items (user_id);

CREATE TABLE sync_conflicts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    queue_item_id   uuid NOT NULL REFERENCES sync_queue_items (id) ON DELETE RESTRICT,
    entity_type     varchar(50) NOT NULL CHECK (entity_type IN ('STUDENT','HEALTH_RECORD','MEDICATION','INCIDENT','VACCINATION','APPOINTMENT','SCREENING','ALLERGY','CHRONIC_CONDITION')),
    entity_id       varchar(255) NOT NULL,
    client_version  jsonb NOT NULL,
    server_version  jsonb NOT NULL,
    resolution      varchar(50) CHECK (resolution IN ('CLIENT_WINS','SERVER_WINS','NEWEST_WINS','MERGE','MANUAL')),
    resolved_at     timestamptz,
    resolved_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    merged_data     jsonb,
    status          varchar(50) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','RESOLVED','DEFERRED')),
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX sync_conflicts_queue_item_id_idx ON sync_conflicts (queue_item_id);
CREATE INDEX sync_conflicts_resolved_by_idx ON sync_conflicts (resolved_by);

CREATE TABLE sis_sync_conflicts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id   uuid NOT NULL REFERENCES sync_sessions (id) ON DELETE RESTRICT,
    student_id   uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    field        varchar(100) NOT NULL,
    local_value  jsonb NOT NULL,
    sis_value    jsonb NOT NULL,
    resolution   varchar(50) CHECK (resolution IN ('KEEP_LOCAL','KEEP_SIS')),
    resolved_at  timestamptz,
    resolved_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX sis_sync_conflicts_student_idx ON sis_sync_conflicts (student_id, created_at DESC);
CREATE INDEX sis_sync_conflicts_session_id_idx ON sis_sync_conflicts (session_id);
CREATE INDEX sis_sync_conflicts_resolved_by_idx ON sis_sync_conflicts (resolved_by);

GRANT SELECT, INSERT, UPDATE ON sync_queue_items, sync_conflicts, sis_sync_conflicts TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sync_sessions, sync_states TO wxdata_app;
