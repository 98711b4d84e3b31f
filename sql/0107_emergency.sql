-- Emergency contacts of students (PHI) and emergency broadcasts.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE emergency_contacts (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id                uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    first_name                varchar(100) NOT NULL,
    last_name                 varchar(100) NOT NULL,
    relationship              varchar(50) NOT NULL,
    phone_number              varchar(20) NOT NULL,
    email                     varchar(255),
    address                   text,
    priority                  varchar(50) NOT NULL DEFAULT 'PRIMARY' CHECK (priority IN ('PRIMARY','SECONDARY','EMERGENCY_ONLY')),
    is_active                 boolean NOT NULL DEFAULT true,
    preferred_contact_method  varchar(50) DEFAULT 'ANY' CHECK (preferred_contact_method IN ('SMS','EMAIL','VOICE','ANY')),
    verification_status       varchar(50) DEFAULT 'UNVERIFIED' CHECK (verification_status IN ('UNVERIFIED','PENDING','VERIFIED','FAILED')),
    last_verified_at          timestamptz,
    notification_channels     text[] CHECK (notification_channels <@ ARRAY['sms','email','voice']::text[]),
    can_pickup_student        boolean DEFAULT false,
    notes                     text,
    version                   integer NOT NULL DEFAULT 1,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    created_by                varchar(128),
    updated_by                varchar(128),
    deleted_at                timestamptz
);
CREATE INDEX emergency_contacts_student_idx ON emergency_contacts (student_id, priority);

CREATE TABLE emergency_broadcasts (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type                     varchar(50) NOT NULL,
    priority                 varchar(50) NOT NULL,
    title                    varchar(200) NOT NULL,
    message                  text NOT NULL,
    audience                 jsonb NOT NULL DEFAULT '[]',
    school_id                uuid REFERENCES schools (id) ON DELETE SET NULL,
    grade_level              varchar(50),
    class_id                 uuid,
    group_ids                jsonb,
    channels                 jsonb NOT NULL DEFAULT '[]',
    requires_acknowledgment  boolean DEFAULT false,
    expires_at               timestamptz,
    sent_by                  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    sent_at                  timestamptz NOT NULL,
    status                   varchar(50) NOT NULL DEFAULT 'DRAFT',
    total_recipients         integer DEFAULT 0 CHECK (total_recipients >= 0),
    delivered_count          integer DEFAULT 0 CHECK (delivered_count >= 0),
    failed_count             integer DEFAULT 0 CHECK (failed_count >= 0),
    acknowledged_count       integer DEFAULT 0 CHECK (acknowledged_count >= 0),
    follow_up_required       boolean DEFAULT false,
    follow_up_message        text,
    version                  integer NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX emergency_broadcasts_school_id_idx ON emergency_broadcasts (school_id);
CREATE INDEX emergency_broadcasts_sent_by_idx ON emergency_broadcasts (sent_by);

GRANT SELECT, INSERT, UPDATE ON emergency_contacts TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON emergency_broadcasts TO wxdata_app;
