-- Medication domain: drug catalog and formulary (reference), student medications,
-- administration logs, prescriptions, drug allergies (PHI), drug interactions (reference).
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE drug_catalog (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    rxnorm_id          varchar(50) UNIQUE,
    rxnorm_code        varchar(50) UNIQUE,
    generic_name       varchar(255) NOT NULL,
    brand_names        text[],
    drug_class         varchar(100),
    fda_approved       boolean NOT NULL DEFAULT true,
    common_doses       jsonb,
    side_effects       text[],
    contraindications  text[],
    warnings           text[],
    is_active          boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE medications (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              varchar(255) NOT NULL,
    generic_name      varchar(255),
    dosage_form       varchar(255) NOT NULL,
    strength          varchar(255) NOT NULL,
    manufacturer      varchar(255),
    ndc               varchar(255) UNIQUE,
    is_controlled     boolean NOT NULL DEFAULT false,
    dea_schedule      varchar(5) CHECK (dea_schedule IN ('I','II','III','IV','V')),
    requires_witness  boolean NOT NULL DEFAULT false,
    is_active         boolean NOT NULL DEFAULT true,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        varchar(128),
    updated_by        varchar(128),
    deleted_at        timestamptz,
    CHECK (is_controlled = (dea_schedule IS NOT NULL))
);

CREATE TABLE student_medications (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id           uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    medication_id        uuid NOT NULL REFERENCES medications (id) ON DELETE RESTRICT,
    dosage               varchar(255) NOT NULL,
    frequency            varchar(255) NOT NULL,
    route                varchar(255) NOT NULL,
    instructions         text,
    start_date           date NOT NULL,
    end_date             date,
    is_active            boolean NOT NULL DEFAULT true,
    prescribed_by        varchar(255) NOT NULL,
    prescription_number  varchar(255),
    refills_remaining    integer DEFAULT 0 CHECK (refills_remaining >= 0),
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           varchar(128),
    updated_by           varchar(128),
    deleted_at           timestamptz,
    CHECK (end_date IS NULL OR end_date >= start_date)
);
CREATE INDEX student_medications_student_idx ON student_medications (student_id, start_date DESC);
CREATE INDEX student_medications_medication_id_idx ON student_medications (medication_id);

CREATE TABLE medication_logs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id        uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    medication_id     uuid NOT NULL REFERENCES medications (id) ON DELETE RESTRICT,
    dosage            numeric(10,2) NOT NULL CHECK (dosage >= 0),
    dosage_unit       varchar(255) NOT NULL,
    route             varchar(255) NOT NULL,
    scheduled_at      timestamptz,
    administered_at   timestamptz NOT NULL,
    administered_by   varchar(255) NOT NULL,
    status            varchar(50) DEFAULT 'ADMINISTERED' CHECK (status IN ('PENDING','ADMINISTERED','MISSED','CANCELLED','REFUSED')),
    notes             text,
    was_given         boolean NOT NULL DEFAULT false,
    reason_not_given  text,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        varchar(128),
    deleted_at        timestamptz
);
CREATE INDEX medication_logs_student_idx ON medication_logs (student_id, administered_at DESC);
CREATE INDEX medication_logs_scheduled_at_idx ON medication_logs (scheduled_at) WHERE status = 'PENDING' AND deleted_at IS NULL;
CREATE INDEX medication_logs_medication_id_idx ON medication_logs (medication_id, administered_at);

CREATE TABLE prescriptions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id          uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    visit_id            uuid REFERENCES clinic_visits (id) ON DELETE SET NULL,
    treatment_plan_id   uuid REFERENCES treatment_plans (id) ON DELETE SET NULL,
    prescribed_by       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    drug_name           varchar(255) NOT NULL,
    drug_code           varchar(100),
    dosage              varchar(100) NOT NULL,
    frequency           varchar(100) NOT NULL,
    route               varchar(50) NOT NULL,
    quantity            integer NOT NULL CHECK (quantity >= 0),
    quantity_filled     integer NOT NULL DEFAULT 0 CHECK (quantity_filled >= 0),
    refills_authorized  integer NOT NULL DEFAULT 0 CHECK (refills_authorized >= 0),
    refills_used        integer NOT NULL DEFAULT 0 CHECK (refills_used >= 0),
    start_date          date NOT NULL,
    end_date            date,
    instructions        text,
    status              varchar(50) NOT NULL DEFAULT 'PENDING',
    pharmacy_name       varchar(255),
    filled_date         timestamptz,
    picked_up_date      timestamptz,
    notes               text,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(128),
    updated_by          varchar(128),
    deleted_at          timestamptz,
    CHECK (refills_used <= refills_authorized),
    CHECK (quantity_filled <= quantity),
    CHECK (end_date IS NULL OR end_date >= start_date),
    CHECK (picked_up_date IS NULL OR filled_date IS NULL OR picked_up_date >= filled_date)
);
CREATE INDEX prescriptions_student_idx ON prescriptions (student_id, start_date DESC);
CREATE INDEX prescriptions_status_idx ON prescriptions (status, start_date);
CREATE INDEX prescriptions_visit_id_idx ON prescriptions (visit_id);
CREATE INDEX prescriptions_treatment_plan_id_idx ON prescriptions (treatment_plan_id);
CREATE INDEX prescriptions_prescribed_by_idx ON prescriptions (prescribed_by);

CREATE TABLE student_drug_allergies (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id      uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    drug_id         uuid NOT NULL REFERENCES drug_catalog (id) ON DELETE RESTRICT,
    allergy_type    varchar(100) NOT NULL,
    reaction        text NOT NULL,
    severity        varchar(50) NOT NULL,
    notes           text,
    diagnosed_date  date,
    diagnosed_by    varchar(255),
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    UNIQUE (student_id, drug_id)
);
CREATE INDEX student_drug_allergies_student_idx ON student_drug_allergies (student_id);
CREATE INDEX student_drug_allergies_drug_id_idx ON student_drug_allergies (drug_id);

CREATE TABLE drug_interactions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    drug1_id          uuid NOT NULL REFERENCES drug_catalog (id) ON DELETE RESTRICT,
    drug2_id          uuid NOT NULL REFERENCES drug_catalog (id) ON DELETE RESTRICT,
    severity          varchar(50) NOT NULL,
    description       text NOT NULL,
    clinical_effects  text,
    management        text,
    citations         jsonb,
    evidence_level    varchar(50),
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (drug1_id <> drug2_id),
    UNIQUE (drug1_id, drug2_id)
);
CREATE INDEX drug_interactions_drug2_id_idx ON drug_interactions (drug2_id);

GRANT SELECT, INSERT, UPDATE ON medications, student_medications, medication_logs, prescriptions, student_drug_allergies TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON drug_catalog, drug_interactions TO wxdata_app;
