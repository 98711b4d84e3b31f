-- One verification of the signed scope per statement on a table scoped through its students, not
-- two. The 0211 policy of such a table read
--
--   coalesce(coalesce((SELECT s.school_id FROM students s WHERE s.id = student_id), nil)
--            = ANY ((SELECT wxdata_scope_schools())::uuid[]), true)
--
-- and the subquery on students is itself filtered by the students policy, which verifies the token
-- in an initplan of its own: every statement on health_records, allergies, medications and the
-- other student-linked tables verified the token twice (measured inside the server,
-- benchmarks/bench_scope_check.py: a health record by id as the application role cost about 42 µs
-- more than as the owner, against about 22 µs for a student by id).
--
-- The students policy already answers the question: a student is visible exactly when the scope
-- grants its school (or grants every school). So the predicate is now
--
--   coalesce((SELECT true FROM students s WHERE s.id = student_id),
--            (SELECT wxdata_scope_schools()) IS NULL)
--
--   * the row's student is visible                  -> true (its school is in the scope, or bypass);
--   * it is not, or the row names no student          -> true only when the scope is every school
--     (the verifier answers NULL for a verified bypass token), else false, never NULL.
--
-- The second initplan runs only for rows whose student is not visible (coalesce stops at its
-- first non-NULL argument), so a statement that reads or writes rows of its own students verifies
-- the token once. Same rows visible and writable as under 0211 for every token and every row
-- (a test compares every such table's visible rows with the scope's model); tables with a
-- school_id of their own keep their predicate.

CREATE OR REPLACE FUNCTION wxdata_apply_row_security(target regclass) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    has_school boolean;
    has_student boolean;
    predicate text;
BEGIN
    SELECT bool_or(attname = 'school_id'), bool_or(attname = 'student_id')
      INTO has_school, has_student
      FROM pg_attribute WHERE attrelid = target AND attnum > 0 AND NOT attisdropped;
    IF target = 'students'::regclass OR has_school THEN
        predicate := 'coalesce(coalesce(school_id, ''00000000-0000-0000-0000-000000000000''::uuid)'
                     ' = ANY ((SELECT wxdata_scope_schools())::uuid[]), true)';
    ELSIF has_student THEN
        predicate := 'coalesce((SELECT true FROM students s WHERE s.id = student_id),'
                     ' (SELECT wxdata_scope_schools()) IS NULL)';
    ELSE
        RAISE EXCEPTION 'table % has neither school_id nor student_id', target;
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    EXECUTE format('DROP POLICY IF EXISTS wxdata_school_scope ON %s', target);
    EXECUTE format('CREATE POLICY wxdata_school_scope ON %s USING (%s) WITH CHECK (%s)',
                   target, predicate, predicate);
END
$$;

-- Re-create every school-scope policy (only those of tables scoped through students change).
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT p.polrelid::regclass FROM pg_policy p WHERE p.polname = 'wxdata_school_scope'
    LOOP
        PERFORM wxdata_apply_row_security(t);
    END LOOP;
END
$$;
