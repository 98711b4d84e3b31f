-- One verification of the signed scope per policy, not two. The 0200 policies read
-- (SELECT wxdata_scope_bypass()) OR school_id = ANY ((SELECT wxdata_school_ids())): two initplans,
-- each verifying the token's HMAC. Both claims now come from one initplan:
--
--   wxdata_scope_schools() = NULL when the token verifies and grants bypass, otherwise the verified
--   school ids ('{}' for a missing, malformed, wrongly signed, stale or future token), never
--   containing NULL or the nil UUID.
--
-- and the predicate is coalesce(coalesce(school_id, nil) = ANY (schools), true):
--   * schools IS NULL (bypass)           -> ANY yields NULL -> true: every row, as before;
--   * otherwise, school_id in schools    -> true;
--   * otherwise (other school, or NULL school_id mapped to the nil UUID, which schools never
--     holds)                              -> false, never NULL: nothing granted.
-- Tables scoped through students read the student's school with a scalar subquery (NULL when the
-- student is missing or outside the caller's schools, mapped to nil: not granted unless bypass).
-- Same rows visible and writable as under 0200/0203 for every token.

CREATE FUNCTION wxdata_scope_schools() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    c record;
BEGIN
    c := public.wxdata_scope_claims();
    IF c.bypass IS TRUE THEN
        RETURN NULL;
    END IF;
    RETURN array_remove(array_remove(coalesce(c.school_ids, '{}'::uuid[]), NULL),
                        '00000000-0000-0000-0000-000000000000'::uuid);
END
$$;
-- Executable as the two functions it replaces in the policies are (it discloses only the claims
-- of a token that verifies).
GRANT EXECUTE ON FUNCTION wxdata_scope_schools() TO wxdata_app;

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
        predicate := 'coalesce(coalesce((SELECT s.school_id FROM students s WHERE s.id = student_id),'
                     ' ''00000000-0000-0000-0000-000000000000''::uuid)'
                     ' = ANY ((SELECT wxdata_scope_schools())::uuid[]), true)';
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

-- Re-create every existing school-scope policy with the single-initplan predicate.
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
