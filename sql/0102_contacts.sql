-- The contact address book (guardians, providers...): PHI, soft-deleted.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE contacts (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    first_name         varchar(100) NOT NULL,
    last_name          varchar(100) NOT NULL,
    email              varchar(255),
    phone              varchar(20),
    type               varchar(50) NOT NULL,
    organization       varchar(200),
    title              varchar(100),
    address            varchar(255),
    city               varchar(100),
    state              varchar(50),
    zip                varchar(20),
    relation_to        uuid,
    relationship_type  varchar(50),
    custom_fields      jsonb DEFAULT '{}',
    is_active          boolean NOT NULL DEFAULT true,
    notes              text,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         varchar(128),
    updated_by         varchar(128),
    deleted_at         timestamptz
);

GRANT SELECT, INSERT, UPDATE ON contacts TO wxdata_app;
