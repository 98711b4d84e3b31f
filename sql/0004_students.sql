-- Students and their health records. Clinical rows reference students ON DELETE RESTRICT:
-- history is never removed by a cascade (PHI rows soft-delete instead).
CREATE TABLE students (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_number      varchar(50) NOT NULL UNIQUE,
    first_name          varchar(100) NOT NULL,
    last_name           varchar(100) NOT NULL,
    date_of_birth       date NOT NULL,
    grade               varchar(10) NOT NULL,
    gender              varchar(20) NOT NULL
                        CHECK (gender IN ('MALE','FEMALE','OTHER','PREFER_NOT_TO_SAY')),
    photo               varchar(500),
    medical_record_num  varchar(50) UNIQUE,
    is_active           boolean NOT NULL DEFAULT true,
    enrollment_date     date NOT NULL,
    nurse_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    school_id           uuid REFERENCES schools (id) ON DELETE RESTRICT,
    district_id         uuid REFERENCES districts (id) ON DELETE RESTRICT,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(128),
    updated_by          varchar(128),
    deleted_at          timestamptz
);
CREATE INDEX students_school_idx ON students (school_id) WHERE deleted_at IS NULL;
CREATE INDEX students_nurse_idx ON students (nurse_id) WHERE deleted_at IS NULL;
CREATE INDEX students_grade_idx ON students (grade, last_name, first_name) WHERE deleted_at IS NULL;
CREATE INDEX students_name_idx ON students (last_name, first_name, id);
CREATE INDEX students_last_name_trgm ON students USING gin (last_name gin_trgm_ops);
CREATE INDEX students_first_name_trgm ON students USING gin (first_name gin_trgm_ops);
CREATE INDEX students_number_trgm ON students USING gin (student_number gin_trgm_ops);

CREATE TABLE health_records (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id           uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    record_type          varchar(50) NOT NULL,
    title                varchar(200) NOT NULL,
    description          text NOT NULL,
    record_date          date NOT NULL,
    provider             varchar(200),
    provider_npi         varchar(20),
    facility             varchar(200),
    facility_npi         varchar(20),
    diagnosis            text,
    diagnosis_code       varchar(20),
    treatment            text,
    follow_up_required   boolean NOT NULL DEFAULT false,
    follow_up_date       date,
    follow_up_completed  boolean NOT NULL DEFAULT false,
    attachments          jsonb NOT NULL DEFAULT '[]',
    metadata             jsonb,
    is_confidential      boolean NOT NULL DEFAULT false,
    notes                text,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           varchar(128),
    updated_by           varchar(128),
    deleted_at           timestamptz,
    CONSTRAINT health_records_follow_up_check
        CHECK (NOT follow_up_required OR follow_up_date IS NOT NULL),
    CONSTRAINT health_records_follow_up_order_check
        CHECK (follow_up_date IS NULL OR follow_up_date >= record_date)
);
CREATE INDEX health_records_student_date_idx ON health_records (student_id, record_date DESC);
CREATE INDEX health_records_type_date_idx ON health_records (record_type, record_date);
CREATE INDEX health_records_follow_up_idx ON health_records (follow_up_date)
    WHERE follow_up_required AND NOT follow_up_completed AND deleted_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON students, health_records TO wxdata_app;
