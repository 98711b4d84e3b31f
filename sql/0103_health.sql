-- Health domain: allergies, chronic conditions, vaccinations, immunizations, vitals, growth,
-- screenings, lab results, mental-health records, medical history (all PHI), school metrics.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE allergies (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id          uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    allergen            varchar(255) NOT NULL,
    allergy_type        varchar(50) NOT NULL DEFAULT 'OTHER' CHECK (allergy_type IN ('FOOD','MEDICATION','ENVIRONMENTAL','INSECT','LATEX','OTHER')),
    severity            varchar(50) NOT NULL CHECK (severity IN ('MILD','MODERATE','SEVERE','LIFE_THREATENING')),
    symptoms            text,
    reactions           jsonb,
    treatment           text,
    emergency_protocol  text,
    onset_date          date,
    diagnosed_date      date,
    diagnosed_by        varchar(255),
    verified            boolean NOT NULL DEFAULT false,
    verified_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    verification_date   timestamptz,
    active              boolean NOT NULL DEFAULT true,
    notes               text,
    epi_pen_required    boolean NOT NULL DEFAULT false,
    epi_pen_location    varchar(255),
    epi_pen_expiration  date,
    health_record_id    uuid REFERENCES health_records (id) ON DELETE SET NULL,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(128),
    updated_by          varchar(128),
    deleted_at          timestamptz,
    CHECK (NOT epi_pen_required OR epi_pen_location IS NOT NULL),
    CHECK (NOT verified OR verified_by IS NOT NULL)
);
CREATE INDEX allergies_student_idx ON allergies (student_id, active);
CREATE INDEX allergies_severity_idx ON allergies (severity) WHERE active AND deleted_at IS NULL;
CREATE INDEX allergies_epi_pen_expiration_idx ON allergies (epi_pen_expiration) WHERE epi_pen_required;
CREATE INDEX allergies_verified_by_idx ON allergies (verified_by);
CREATE INDEX allergies_health_record_id_idx ON allergies (health_record_id);

CREATE TABLE chronic_conditions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id          uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    health_record_id    uuid REFERENCES health_records (id) ON DELETE SET NULL,
    condition           varchar(200) NOT NULL,
    icd_code            varchar(20),
    diagnosed_date      date NOT NULL,
    diagnosed_by        varchar(200),
    status              varchar(50) NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','MANAGED','RESOLVED','MONITORING')),
    severity            varchar(50),
    notes               text,
    care_plan           text,
    medications         jsonb NOT NULL DEFAULT '[]',
    restrictions        jsonb NOT NULL DEFAULT '[]',
    triggers            jsonb NOT NULL DEFAULT '[]',
    accommodations      jsonb NOT NULL DEFAULT '[]',
    emergency_protocol  text,
    last_review_date    date,
    next_review_date    date,
    requires_iep        boolean NOT NULL DEFAULT false,
    requires_504        boolean NOT NULL DEFAULT false,
    is_active           boolean NOT NULL DEFAULT true,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(128),
    updated_by          varchar(128),
    deleted_at          timestamptz
);
CREATE INDEX chronic_conditions_student_idx ON chronic_conditions (student_id, diagnosed_date DESC);
CREATE INDEX chronic_conditions_next_review_date_idx ON chronic_conditions (next_review_date) WHERE is_active AND deleted_at IS NULL;
CREATE INDEX chronic_conditions_health_record_id_idx ON chronic_conditions (health_record_id);

CREATE TABLE vaccinations (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id               uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    health_record_id         uuid REFERENCES health_records (id) ON DELETE SET NULL,
    vaccine_name             varchar(200) NOT NULL,
    vaccine_type             varchar(50) CHECK (vaccine_type IN ('COVID_19','FLU','MEASLES','MUMPS','RUBELLA','MMR','POLIO','HEPATITIS_A','HEPATITIS_B','VARICELLA','TETANUS','DIPHTHERIA','PERTUSSIS','TDAP','DTAP','HIB','PNEUMOCOCCAL','ROTAVIRUS','MENINGOCOCCAL','HPV','OTHER')),
    manufacturer             varchar(100),
    lot_number               varchar(50),
    cvx_code                 varchar(10),
    ndc_code                 varchar(20),
    dose_number              integer CHECK (dose_number >= 1),
    total_doses              integer CHECK (total_doses >= 1),
    series_complete          boolean NOT NULL DEFAULT false,
    administration_date      date NOT NULL,
    administered_by          varchar(200) NOT NULL,
    administered_by_role     varchar(50),
    facility                 varchar(200),
    site_of_administration   varchar(50) CHECK (site_of_administration IN ('ARM_LEFT','ARM_RIGHT','THIGH_LEFT','THIGH_RIGHT','DELTOID_LEFT','DELTOID_RIGHT','BUTTOCK_LEFT','BUTTOCK_RIGHT','ORAL','NASAL','OTHER')),
    route_of_administration  varchar(50) CHECK (route_of_administration IN ('INTRAMUSCULAR','SUBCUTANEOUS','INTRADERMAL','ORAL','INTRANASAL','INTRAVENOUS','OTHER')),
    dosage_amount            varchar(50),
    expiration_date          date,
    next_due_date            date,
    reactions                text,
    adverse_events           jsonb,
    exemption_status         boolean NOT NULL DEFAULT false,
    exemption_reason         text,
    exemption_document       varchar(500),
    compliance_status        varchar(50) NOT NULL DEFAULT 'COMPLIANT' CHECK (compliance_status IN ('COMPLIANT','OVERDUE','PARTIALLY_COMPLIANT','EXEMPT','NON_COMPLIANT')),
    vfc_eligibility          boolean NOT NULL DEFAULT false,
    vis_provided             boolean NOT NULL DEFAULT false,
    vis_date                 date,
    consent_obtained         boolean NOT NULL DEFAULT false,
    consent_by               varchar(200),
    notes                    text,
    version                  integer NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    created_by               varchar(128),
    updated_by               varchar(128),
    deleted_at               timestamptz,
    CHECK (next_due_date IS NULL OR next_due_date >= administration_date)
);
CREATE INDEX vaccinations_student_idx ON vaccinations (student_id, administration_date DESC);
CREATE INDEX vaccinations_next_due_date_idx ON vaccinations (next_due_date) WHERE NOT series_complete AND deleted_at IS NULL;
CREATE INDEX vaccinations_vaccine_type_idx ON vaccinations (vaccine_type, compliance_status);
CREATE INDEX vaccinations_health_record_id_idx ON vaccinations (health_record_id);

CREATE TABLE immunizations (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id         uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    vaccine_name       varchar(255) NOT NULL,
    vaccine_code       varchar(50),
    administered_date  date NOT NULL,
    expiration_date    date,
    next_due_date      date,
    dosage             varchar(50),
    site               varchar(50),
    route              varchar(50),
    manufacturer       varchar(255),
    lot_number         varchar(100),
    administered_by    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    notes              text,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CHECK (next_due_date IS NULL OR next_due_date >= administered_date)
);
CREATE INDEX immunizations_student_idx ON immunizations (student_id, administered_date DESC);
CREATE INDEX immunizations_next_due_date_idx ON immunizations (next_due_date) WHERE deleted_at IS NULL;
CREATE INDEX immunizations_administered_by_idx ON immunizations (administered_by);

CREATE TABLE vital_signs (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id                uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    measurement_date          timestamptz NOT NULL,
    temperature               double precision CHECK (temperature >= 0 AND temperature <= 120),
    temperature_unit          varchar(10) DEFAULT 'F' CHECK (temperature_unit IN ('F','C')),
    heart_rate                integer CHECK (heart_rate >= 0 AND heart_rate <= 400),
    respiratory_rate          integer CHECK (respiratory_rate >= 0 AND respiratory_rate <= 200),
    blood_pressure_systolic   integer CHECK (blood_pressure_systolic >= 0 AND blood_pressure_systolic <= 400),
    blood_pressure_diastolic  integer CHECK (blood_pressure_diastolic >= 0 AND blood_pressure_diastolic <= 300),
    oxygen_saturation         double precision CHECK (oxygen_saturation >= 0 AND oxygen_saturation <= 100),
    weight                    double precision CHECK (weight >= 0),
    weight_unit               varchar(10) DEFAULT 'lbs' CHECK (weight_unit IN ('lbs','kg')),
    height                    double precision CHECK (height >= 0),
    height_unit               varchar(10) DEFAULT 'inches' CHECK (height_unit IN ('inches','cm')),
    bmi                       double precision CHECK (bmi >= 0),
    pain                      integer CHECK (pain >= 0 AND pain <= 10),
    is_abnormal               boolean NOT NULL DEFAULT false,
    abnormal_flags            text[],
    measured_by               varchar(255),
    notes                     text,
    version                   integer NOT NULL DEFAULT 1,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    deleted_at                timestamptz
);
CREATE INDEX vital_signs_student_idx ON vital_signs (student_id, measurement_date DESC);

CREATE TABLE growth_tracking (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id         uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    measurement_date   timestamptz NOT NULL,
    height             double precision CHECK (height >= 0),
    height_unit        varchar(10) DEFAULT 'inches' CHECK (height_unit IN ('inches','cm')),
    weight             double precision CHECK (weight >= 0),
    weight_unit        varchar(10) DEFAULT 'lbs' CHECK (weight_unit IN ('lbs','kg')),
    bmi                double precision CHECK (bmi >= 0),
    percentile_height  double precision CHECK (percentile_height >= 0 AND percentile_height <= 100),
    percentile_weight  double precision CHECK (percentile_weight >= 0 AND percentile_weight <= 100),
    percentile_bmi     double precision CHECK (percentile_bmi >= 0 AND percentile_bmi <= 100),
    notes              text,
    measured_by        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
CREATE INDEX growth_tracking_student_idx ON growth_tracking (student_id, measurement_date DESC);
CREATE INDEX growth_tracking_measured_by_idx ON growth_tracking (measured_by);

CREATE TABLE health_screenings (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id          uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    screening_type      varchar(100) NOT NULL,
    screening_date      date NOT NULL,
    results             jsonb NOT NULL,
    passed              boolean NOT NULL,
    follow_up_required  boolean NOT NULL DEFAULT false,
    notes               text,
    conducted_by        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX health_screenings_student_idx ON health_screenings (student_id, screening_date DESC);
CREATE INDEX health_screenings_screening_type_idx ON health_screenings (screening_type, screening_date);
CREATE INDEX health_screenings_screening_date_idx ON health_screenings (screening_date) WHERE follow_up_required AND deleted_at IS NULL;
CREATE INDEX health_screenings_conducted_by_idx ON health_screenings (conducted_by);

CREATE TABLE lab_results (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id       uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    test_type        varchar(50) NOT NULL CHECK (test_type IN ('blood_test','urinalysis','culture','chemistry','hematology','microbiology','other')),
    test_name        varchar(255) NOT NULL,
    test_code        varchar(255),
    ordered_date     timestamptz NOT NULL,
    collection_date  timestamptz,
    result_date      timestamptz,
    result           text NOT NULL,
    result_value     double precision,
    result_unit      varchar(255),
    reference_range  varchar(255),
    is_abnormal      boolean NOT NULL DEFAULT false,
    abnormal_flags   text[],
    interpretation   text,
    status           varchar(20) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','completed','reviewed','cancelled')),
    ordered_by       varchar(255),
    performed_by     varchar(255),
    reviewed_by      varchar(255),
    reviewed_date    timestamptz,
    lab_name         varchar(255),
    notes            text,
    version          integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    CHECK (result_date IS NULL OR result_date >= ordered_date)
);
CREATE INDEX lab_results_student_idx ON lab_results (student_id, ordered_date DESC);
CREATE INDEX lab_results_status_idx ON lab_results (status, ordered_date);
CREATE INDEX lab_results_student_id_1_idx ON lab_results (student_id) WHERE is_abnormal AND deleted_at IS NULL;

CREATE TABLE mental_health_records (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id                uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    record_type               varchar(50) NOT NULL CHECK (record_type IN ('ASSESSMENT','COUNSELING_SESSION','CRISIS_INTERVENTION','THERAPY_SESSION','PSYCHIATRIC_EVALUATION','SCREENING','FOLLOW_UP','REFERRAL','PROGRESS_NOTE')),
    record_date               timestamptz NOT NULL,
    counselor_id              uuid REFERENCES users (id) ON DELETE SET NULL,
    therapist_id              uuid,
    psychiatrist_id           uuid,
    title                     varchar(200) NOT NULL,
    session_notes             text NOT NULL,
    assessment                text,
    diagnosis                 text,
    diagnosis_code            varchar(20),
    treatment_plan            text,
    risk_level                varchar(50) NOT NULL DEFAULT 'NONE' CHECK (risk_level IN ('NONE','LOW','MODERATE','HIGH','CRITICAL')),
    risk_factors              text[],
    protective_factors        text[],
    interventions             text[],
    follow_up_required        boolean NOT NULL DEFAULT false,
    follow_up_date            date,
    follow_up_completed       boolean NOT NULL DEFAULT false,
    referral_to               varchar(200),
    referral_reason           text,
    confidentiality_level     varchar(20) NOT NULL DEFAULT 'STANDARD' CHECK (confidentiality_level IN ('STANDARD','ENHANCED','MAXIMUM')),
    parent_notified           boolean NOT NULL DEFAULT false,
    parent_notification_date  timestamptz,
    attachments               jsonb NOT NULL DEFAULT '[]',
    metadata                  jsonb,
    version                   integer NOT NULL DEFAULT 1,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    created_by                varchar(128),
    updated_by                varchar(128),
    deleted_at                timestamptz,
    CHECK (NOT follow_up_required OR follow_up_date IS NOT NULL)
);
CREATE INDEX mental_health_records_student_idx ON mental_health_records (student_id, record_date DESC);
CREATE INDEX mental_health_records_risk_level_idx ON mental_health_records (risk_level) WHERE deleted_at IS NULL;
CREATE INDEX mental_health_records_follow_up_date_idx ON mental_health_records (follow_up_date) WHERE follow_up_required AND NOT follow_up_completed;
CREATE INDEX mental_health_records_counselor_id_idx ON mental_health_records (counselor_id);

CREATE TABLE medical_history (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id           uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    record_type          varchar(30) NOT NULL CHECK (record_type IN ('condition','allergy','surgery','hospitalization','family_history','other')),
    condition            varchar(255) NOT NULL,
    diagnosis_code       varchar(255),
    diagnosis_date       date,
    resolved_date        date,
    is_active            boolean NOT NULL DEFAULT true,
    severity             varchar(20) CHECK (severity IN ('mild','moderate','severe','critical')),
    category             varchar(20) CHECK (category IN ('chronic','acute','genetic','infectious','autoimmune','other')),
    treatment            text,
    medication           text,
    notes                text,
    is_family_history    boolean NOT NULL DEFAULT false,
    family_relation      varchar(20) CHECK (family_relation IN ('mother','father','sibling','grandparent','aunt','uncle','cousin','other')),
    is_critical          boolean NOT NULL DEFAULT false,
    requires_monitoring  boolean NOT NULL DEFAULT false,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,
    CHECK (is_family_history = (family_relation IS NOT NULL)),
    CHECK (resolved_date IS NULL OR diagnosis_date IS NULL OR resolved_date >= diagnosis_date)
);
CREATE INDEX medical_history_student_idx ON medical_history (student_id, diagnosis_date DESC);

CREATE TABLE health_metric_snapshots (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    school_id      uuid NOT NULL REFERENCES schools (id) ON DELETE RESTRICT,
    metric_name    varchar(255) NOT NULL,
    value          numeric(10,2) NOT NULL,
    unit           varchar(255) NOT NULL,
    category       varchar(255) NOT NULL,
    trend          varchar(50) CHECK (trend IN ('INCREASING','DECREASING','STABLE','FLUCTUATING')),
    metadata       jsonb,
    snapshot_date  timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX health_metric_snapshots_metric_name_idx ON health_metric_snapshots (metric_name, snapshot_date);
CREATE INDEX health_metric_snapshots_school_id_idx ON health_metric_snapshots (school_id);

GRANT SELECT, INSERT, UPDATE ON allergies, chronic_conditions, vaccinations, immunizations, vital_signs, growth_tracking, health_screenings, lab_results, mental_health_records, medical_history TO wxdata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON health_metric_snapshots TO wxdata_app;
