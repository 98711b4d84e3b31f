-- Academic transcripts (FERPA education records), soft-deleted, one per student and term.
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE academic_transcripts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id     uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    academic_year  varchar(20) NOT NULL,
    semester       varchar(20) NOT NULL,
    grade          varchar(10) NOT NULL,
    gpa            numeric(3,2) NOT NULL DEFAULT 0 CHECK (gpa >= 0 AND gpa <= 5),
    subjects       jsonb NOT NULL DEFAULT '[]',
    attendance     jsonb NOT NULL DEFAULT '{"total_days": 0, "present_days": 0, "absent_days": 0, "tardy_days": 0, "attendance_rate": 0}',
    behavior       jsonb NOT NULL DEFAULT '{"conduct_grade": "N/A", "incidents": 0, "commendations": 0}',
    imported_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    imported_at    timestamptz,
    import_source  varchar(100),
    metadata       jsonb,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    UNIQUE (student_id, academic_year, semester)
);
CREATE INDEX academic_transcripts_student_idx ON academic_transcripts (student_id);
CREATE INDEX academic_transcripts_imported_by_idx ON academic_transcripts (imported_by);

GRANT SELECT, INSERT, UPDATE ON academic_transcripts TO wxdata_app;
