-- Row-level school scoping. The execution context is applied per transaction with
-- set_config('app.school_ids', '<uuid>,<uuid>', true) and set_config('app.bypass_scope', 'on'|'off', true)
-- (wxdata does this for every statement of a non-bypassing role). Policies are FORCEd, so even the
-- table owner is scoped; only superusers and BYPASSRLS roles escape them (wxdata warns about those).

CREATE FUNCTION wxdata_scope_bypass() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('app.bypass_scope', true), '') = 'on' $$;

CREATE FUNCTION wxdata_school_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(string_to_array(nullif(current_setting('app.school_ids', true), ''), ',')::uuid[],
                          '{}'::uuid[]) $$;

-- Apply the policy to one table: by its school_id column, or through students by its student_id.
CREATE FUNCTION wxdata_apply_row_security(target regclass) RETURNS void
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
        predicate := 'school_id = ANY ((SELECT wxdata_school_ids())::uuid[])';
    ELSIF has_student THEN
        predicate := 'EXISTS (SELECT 1 FROM students s WHERE s.id = student_id'
                     ' AND s.school_id = ANY ((SELECT wxdata_school_ids())::uuid[]))';
    ELSE
        RAISE EXCEPTION 'table % has neither school_id nor student_id', target;
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    EXECUTE format('DROP POLICY IF EXISTS wxdata_school_scope ON %s', target);
    EXECUTE format(
        'CREATE POLICY wxdata_school_scope ON %s USING ((SELECT wxdata_scope_bypass()) OR %s) '
        'WITH CHECK ((SELECT wxdata_scope_bypass()) OR %s)', target, predicate, predicate);
END
$$;

-- Every student-linked or school-linked table that exists now (later migrations call the function
-- for the tables they add; a test checks that every scoped entity has its policy).
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN
        SELECT DISTINCT c.oid::regclass
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind = 'r'
           AND a.attname IN ('student_id', 'school_id')
           AND c.relname NOT IN ('schools', 'users')
           AND c.relname NOT LIKE 'audit%'
    LOOP
        PERFORM wxdata_apply_row_security(t);
    END LOOP;
    PERFORM wxdata_apply_row_security('students'::regclass);
END
$$;
