-- Three rules the spec has always held and their tables never did: a health record's type and a
-- user's role are closed vocabularies, and a user's failed login attempts are never negative.
-- wxdata's own writes were held to them before they were sent; another writer's were not. Each
-- becomes a domain of its column's own, as sql/0221 made every other rule of one column, so the
-- database holds what the spec says for every writer.
--
-- A deployment may already hold rows outside these rules (written by hand or by another system).
-- The migration counts them first and, if there are any, stops before changing anything, naming
-- the column and how many rows (never a value): correct or remove those rows, then migrate again.
--
-- Changing the columns' types rewrites health_records and users under an ACCESS EXCLUSIVE lock;
-- on large tables, run this migration in a quiet window.

DO $$
DECLARE
    outside bigint;
BEGIN
    SELECT count(*) INTO outside FROM health_records
     WHERE record_type NOT IN ('CHECKUP', 'VACCINATION', 'ILLNESS', 'INJURY', 'SCREENING',
             'PHYSICAL_EXAM', 'MENTAL_HEALTH', 'DENTAL', 'VISION', 'HEARING', 'EXAMINATION',
             'ALLERGY_DOCUMENTATION', 'CHRONIC_CONDITION_REVIEW', 'GROWTH_ASSESSMENT',
             'VITAL_SIGNS_CHECK', 'EMERGENCY_VISIT', 'FOLLOW_UP', 'CONSULTATION', 'DIAGNOSTIC_TEST',
             'PROCEDURE', 'HOSPITALIZATION', 'SURGERY', 'COUNSELING', 'THERAPY', 'NUTRITION',
             'MEDICATION_REVIEW', 'IMMUNIZATION', 'LAB_RESULT', 'RADIOLOGY', 'OTHER');
    IF outside > 0 THEN
        RAISE EXCEPTION 'health_records.record_type: % rows hold a value outside its vocabulary',
            outside
            USING ERRCODE = 'check_violation',
                  HINT = 'correct or remove those rows, then run the migration again';
    END IF;
    SELECT count(*) INTO outside FROM users WHERE role NOT IN ('ADMIN', 'NURSE', 'SCHOOL_ADMIN',
            'DISTRICT_ADMIN', 'VIEWER', 'COUNSELOR', 'SYSTEM');
    IF outside > 0 THEN
        RAISE EXCEPTION 'users.role: % rows hold a value outside its vocabulary', outside
            USING ERRCODE = 'check_violation',
                  HINT = 'correct or remove those rows, then run the migration again';
    END IF;
    SELECT count(*) INTO outside FROM users WHERE failed_login_attempts < 0;
    IF outside > 0 THEN
        RAISE EXCEPTION 'users.failed_login_attempts: % rows hold a negative count', outside
            USING ERRCODE = 'check_violation',
                  HINT = 'correct or remove those rows, then run the migration again';
    END IF;
END
$$;

CREATE DOMAIN health_records_record_type AS varchar(50)
    CONSTRAINT record_type_check CHECK (VALUE IN (
        'CHECKUP', 'VACCINATION', 'ILLNESS', 'INJURY', 'SCREENING', 'PHYSICAL_EXAM',
        'MENTAL_HEALTH', 'DENTAL', 'VISION', 'HEARING', 'EXAMINATION', 'ALLERGY_DOCUMENTATION',
        'CHRONIC_CONDITION_REVIEW', 'GROWTH_ASSESSMENT', 'VITAL_SIGNS_CHECK', 'EMERGENCY_VISIT',
        'FOLLOW_UP', 'CONSULTATION', 'DIAGNOSTIC_TEST', 'PROCEDURE', 'HOSPITALIZATION', 'SURGERY',
        'COUNSELING', 'THERAPY', 'NUTRITION', 'MEDICATION_REVIEW', 'IMMUNIZATION', 'LAB_RESULT',
        'RADIOLOGY', 'OTHER'));
CREATE DOMAIN users_role AS varchar(50)
    CONSTRAINT role_check CHECK (VALUE IN ('ADMIN', 'NURSE', 'SCHOOL_ADMIN', 'DISTRICT_ADMIN',
        'VIEWER', 'COUNSELOR', 'SYSTEM'));
CREATE DOMAIN users_failed_login_attempts AS integer
    CONSTRAINT failed_login_attempts_check CHECK (VALUE >= 0);

ALTER TABLE health_records
    ALTER COLUMN record_type TYPE health_records_record_type;
ALTER TABLE users
    ALTER COLUMN role TYPE users_role,
    ALTER COLUMN failed_login_attempts TYPE users_failed_login_attempts;
