-- Documents (PHI), their signatures and audit trail.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE documents (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title               varchar(255) NOT NULL,
    description         text CHECK (char_length(description) <= 5000),
    category            varchar(50) NOT NULL CHECK (category IN ('MEDICAL_RECORD','INCIDENT_REPORT','CONSENT_FORM','POLICY','TRAINING','ADMINISTRATIVE','STUDENT_FILE','INSURANCE','OTHER')),
    file_type           varchar(100) NOT NULL,
    file_name           varchar(255) NOT NULL,
    file_size           bigint NOT NULL CHECK (file_size >= 1024 AND file_size <= 5.24288e+07),
    file_url            text NOT NULL,
    uploaded_by         varchar(255) NOT NULL,
    student_id          uuid REFERENCES students (id) ON DELETE RESTRICT,
    tags                text[] DEFAULT '{}',
    is_template         boolean NOT NULL DEFAULT false,
    template_data       jsonb,
    status              varchar(50) NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT','PENDING_REVIEW','APPROVED','ARCHIVED','EXPIRED')),
    document_version    integer NOT NULL DEFAULT 1 CHECK (document_version >= 1 AND document_version <= 100),
    access_level        varchar(50) NOT NULL DEFAULT 'STAFF_ONLY' CHECK (access_level IN ('PUBLIC','STAFF_ONLY','ADMIN_ONLY','RESTRICTED')),
    parent_id           uuid REFERENCES documents (id) ON DELETE SET NULL,
    retention_date      timestamptz,
    contains_phi        boolean NOT NULL DEFAULT false,
    requires_signature  boolean NOT NULL DEFAULT false,
    last_accessed_at    timestamptz,
    access_count        integer NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    is_active           boolean NOT NULL DEFAULT true,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(128),
    updated_by          varchar(128),
    deleted_at          timestamptz,
    CHECK (NOT contains_phi OR access_level <> 'PUBLIC'),
    CHECK (NOT contains_phi OR file_url LIKE 'https://%'),
    CHECK (tags IS NULL OR cardinality(tags) <= 10)
);
CREATE INDEX documents_student_idx ON documents (student_id, created_at DESC);
CREATE INDEX documents_category_idx ON documents (category, status);
CREATE INDEX documents_retention_date_idx ON documents (retention_date);
CREATE INDEX documents_parent_id_idx ON documents (parent_id);

CREATE TABLE document_signatures (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE RESTRICT,
    signed_by       varchar(255) NOT NULL,
    signed_by_role  varchar(100) NOT NULL,
    signature_data  text,
    ip_address      varchar(45),
    signed_at       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX document_signatures_document_id_idx ON document_signatures (document_id);

CREATE TABLE document_audit_trails (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id   uuid NOT NULL REFERENCES documents (id) ON DELETE RESTRICT,
    action        varchar(50) NOT NULL,
    performed_by  varchar(255) NOT NULL,
    changes       jsonb,
    ip_address    varchar(45),
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE INDEX document_audit_trails_document_id_idx ON document_audit_trails (document_id);

GRANT SELECT, INSERT, UPDATE ON documents, document_signatures, document_audit_trails TO wxdata_app;
