-- Domain rules the database enforces so concurrent writers cannot race past them.
-- One active allergy per allergen per student (case-insensitive): a duplicate is a Conflict
-- on "allergen", even when two nurses record it at the same moment.
CREATE UNIQUE INDEX allergies_allergen_key ON allergies (student_id, lower(allergen))
    WHERE active AND deleted_at IS NULL;
