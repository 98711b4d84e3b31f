-- Messaging: conversations, participants, messages (PHI), deliveries, reads, reactions.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE conversations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type             varchar(50) NOT NULL CHECK (type IN ('DIRECT','GROUP','CHANNEL')),
    name             varchar(255),
    description      text,
    avatar_url       varchar(500),
    tenant_id        uuid NOT NULL,
    created_by_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    last_message_at  timestamptz,
    metadata         jsonb DEFAULT '{}',
    is_archived      boolean NOT NULL DEFAULT false,
    version          integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
CREATE INDEX conversations_created_by_id_idx ON conversations (created_by_id);

CREATE TABLE conversation_participants (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id          uuid NOT NULL REFERENCES conversations (id) ON DELETE RESTRICT,
    user_id                  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    role                     varchar(50) NOT NULL DEFAULT 'MEMBER' CHECK (role IN ('OWNER','ADMIN','MEMBER','VIEWER')),
    joined_at                timestamptz NOT NULL DEFAULT now(),
    last_read_at             timestamptz,
    is_muted                 boolean NOT NULL DEFAULT false,
    is_pinned                boolean NOT NULL DEFAULT false,
    custom_name              varchar(255),
    notification_preference  varchar(20) NOT NULL DEFAULT 'ALL' CHECK (notification_preference IN ('ALL','MENTIONS','NONE')),
    metadata                 jsonb DEFAULT '{}',
    version                  integer NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, user_id)
);
CREATE INDEX conversation_participants_user_id_idx ON conversation_participants (user_id);

CREATE TABLE messages (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id      uuid REFERENCES conversations (id) ON DELETE SET NULL,
    subject              varchar(255),
    content              text NOT NULL,
    encrypted_content    text,
    is_encrypted         boolean NOT NULL DEFAULT false,
    encryption_metadata  jsonb,
    encryption_version   varchar(20),
    priority             varchar(50) NOT NULL DEFAULT 'MEDIUM' CHECK (priority IN ('LOW','MEDIUM','HIGH','URGENT')),
    category             varchar(50) NOT NULL DEFAULT 'GENERAL' CHECK (category IN ('EMERGENCY','HEALTH_UPDATE','APPOINTMENT_REMINDER','MEDICATION_REMINDER','GENERAL','INCIDENT_NOTIFICATION','COMPLIANCE')),
    recipient_count      integer NOT NULL DEFAULT 0 CHECK (recipient_count >= 0),
    scheduled_at         timestamptz,
    attachments          text[] NOT NULL DEFAULT '{}',
    sender_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    template_id          uuid REFERENCES message_templates (id) ON DELETE SET NULL,
    parent_id            uuid REFERENCES messages (id) ON DELETE SET NULL,
    thread_id            uuid REFERENCES messages (id) ON DELETE SET NULL,
    is_edited            boolean NOT NULL DEFAULT false,
    edited_at            timestamptz,
    metadata             jsonb DEFAULT '{}',
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE INDEX messages_conversation_id_idx ON messages (conversation_id, created_at);
CREATE INDEX messages_sender_id_idx ON messages (sender_id);
CREATE INDEX messages_template_id_idx ON messages (template_id);
CREATE INDEX messages_parent_id_idx ON messages (parent_id);
CREATE INDEX messages_thread_id_idx ON messages (thread_id);

CREATE TABLE message_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    recipient_type  varchar(50) NOT NULL CHECK (recipient_type IN ('NURSE','PARENT','GUARDIAN','EMERGENCY_CONTACT','STUDENT','STAFF','ADMINISTRATOR')),
    recipient_id    uuid NOT NULL,
    channel         varchar(50) NOT NULL CHECK (channel IN ('EMAIL','SMS','PUSH','IN_APP')),
    status          varchar(50) NOT NULL CHECK (status IN ('PENDING','SENT','DELIVERED','FAILED','BOUNCED')),
    contact_info    varchar(500),
    sent_at         timestamptz,
    delivered_at    timestamptz,
    failure_reason  text,
    external_id     varchar(255),
    message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE RESTRICT,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX message_deliveries_message_id_idx ON message_deliveries (message_id);

CREATE TABLE message_reads (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE RESTRICT,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    read_at     timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, user_id)
);
CREATE INDEX message_reads_user_id_idx ON message_reads (user_id);

CREATE TABLE message_reactions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE RESTRICT,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    emoji       varchar(20) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, user_id, emoji)
);
CREATE INDEX message_reactions_user_id_idx ON message_reactions (user_id);

GRANT SELECT, INSERT, UPDATE ON conversations, messages, message_deliveries TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON conversation_participants, message_reads, message_reactions TO wxdata_app;
