-- Clinical domain: clinic visits, treatment plans, clinical notes (PHI), protocols (reference).
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE clinic_visits (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id          uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    check_in_time       timestamptz NOT NULL,
    check_out_time      timestamptz,
    reason_for_visit    jsonb NOT NULL,
    symptoms            jsonb,
    treatment           text,
    disposition         varchar(50) NOT NULL CHECK (disposition IN ('RETURN_TO_CLASS','SENT_HOME','EMERGENCY_TRANSPORT','OTHER')),
    classes_missed      jsonb,
    minutes_missed      integer CHECK (minutes_missed >= 0),
    attended_by         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    follow_up_required  boolean NOT NULL DEFAULT false,
    follow_up_date      date,
    notes               text,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(128),
    updated_by          varchar(128),
    deleted_at          timestamptz,
    CHECK (check_out_time IS NULL OR check_out_time >= check_in_time)
);
CREATE INDEX clinic_visits_student_idx ON clinic_visits (student_id, check_in_time DESC);
CREATE INDEX clinic_visits_attended_by_idx ON clinic_visits (attended_by, check_in_time);
CREATE INDEX clinic_visits_check_in_time_idx ON clinic_visits (check_in_time) WHERE check_out_time IS NULL;
CREATE INDEX clinic_visits_follow_up_date_idx ON clinic_visits (follow_up_date) WHERE follow_up_required AND deleted_at IS NULL;

CREATE TABLE treatment_plans (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id     uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    diagnosis      text NOT NULL,
    plan_details   jsonb NOT NULL,
    start_date     date NOT NULL,
    end_date       date,
    status         varchar(50) NOT NULL,
    prescribed_by  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_by     varchar(128),
    updated_by     varchar(128),
    deleted_at     timestamptz,
    CHECK (end_date IS NULL OR end_date >= start_date)
);
CREATE INDEX treatment_plans_student_idx ON treatment_plans (student_id, start_date DESC);
CREATE INDEX treatment_plans_prescribed_by_idx ON treatment_plans (prescribed_by);

CREATE TABLE clinical_notes (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id        uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    visit_id          uuid REFERENCES clinic_visits (id) ON DELETE SET NULL,
    type              varchar(50) NOT NULL DEFAULT 'GENERAL',
    author_id         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    title             varchar(255) NOT NULL,
    content           text NOT NULL,
    subjective        text,
    objective         text,
    assessment        text,
    plan              text,
    tags              text[],
    is_confidential   boolean NOT NULL DEFAULT false,
    is_signed         boolean NOT NULL DEFAULT false,
    signed_at         timestamptz,
    amended           boolean NOT NULL DEFAULT false,
    amendment_reason  text,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        varchar(128),
    updated_by        varchar(128),
    deleted_at        timestamptz,
    CHECK (NOT amended OR amendment_reason IS NOT NULL)
);
CREATE INDEX clinical_notes_student_idx ON clinical_notes (student_id, created_at DESC);
CREATE INDEX clinical_notes_visit_id_idx ON clinical_notes (visit_id);
CREATE INDEX clinical_notes_author_id_idx ON clinical_notes (author_id);

CREATE TABLE clinical_protocols (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                varchar(255) NOT NULL,
    code                varchar(50) NOT NULL UNIQUE,
    protocol_version    varchar(20) NOT NULL,
    category            varchar(100) NOT NULL,
    description         text NOT NULL,
    indications         jsonb NOT NULL,
    contraindications   jsonb,
    steps               jsonb NOT NULL,
    decision_points     jsonb,
    required_equipment  jsonb,
    medications         jsonb,
    status              varchar(50) NOT NULL DEFAULT 'DRAFT',
    approved_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    approved_date       timestamptz,
    effective_date      date,
    review_date         date,
    citations           jsonb,
    tags                jsonb,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(128),
    updated_by          varchar(128)
);
CREATE INDEX clinical_protocols_approved_by_idx ON clinical_protocols (approved_by);

GRANT SELECT, INSERT, UPDATE ON clinic_visits, treatment_plans, clinical_notes TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON clinical_protocols TO wxdata_app;
