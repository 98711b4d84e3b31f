-- Foreign-key checks (deleting a school or a user) cannot use partial indexes: index the
-- referencing columns in full so those checks seek instead of scanning every student.
DROP INDEX students_school_idx;
DROP INDEX students_nurse_idx;
CREATE INDEX students_school_idx ON students (school_id);
CREATE INDEX students_nurse_idx ON students (nurse_id);
