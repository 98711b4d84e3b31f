-- Cross-school attempts leave a trace. When a by-id read, update, delete or restore finds no row,
-- wxdata asks this function whether the id exists outside the caller's school scope; the caller
-- still gets NotFound (no existence oracle in the API), but wxdata records ACCESS_DENIED on audit
-- lane 2. The function reveals one boolean and nothing of the row.
--
-- The caller's scope comes from wxdata_school_ids() / wxdata_scope_bypass() (never from the raw
-- settings). Only tables under the wxdata_school_scope policy are accepted, and only their
-- single-column primary key is compared. SECURITY DEFINER: it runs as the migration owner, which
-- must see every row (superuser or BYPASSRLS), or it can only answer false.

CREATE FUNCTION wxdata_outside_scope(target regclass, ids uuid[]) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    pk name;
    has_school boolean;
    schools uuid[];
    found boolean;
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 OR cardinality(ids) > 100000 THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policy p
                    WHERE p.polrelid = target AND p.polname = 'wxdata_school_scope') THEN
        RETURN false;  -- not a school-scoped table: nothing is outside a scope
    END IF;
    IF public.wxdata_scope_bypass() THEN
        RETURN false;  -- nothing is outside a bypassing caller's scope
    END IF;
    SELECT a.attname INTO pk
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = target AND i.indisprimary AND i.indnatts = 1
       AND a.atttypid = 'uuid'::regtype;
    IF pk IS NULL THEN
        RETURN false;
    END IF;
    SELECT bool_or(attname = 'school_id') INTO has_school
      FROM pg_attribute WHERE attrelid = target AND attnum > 0 AND NOT attisdropped;
    schools := public.wxdata_school_ids();
    IF target = 'public.students'::regclass OR has_school THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s t WHERE t.%I = ANY ($1) '
                       'AND NOT coalesce(t.school_id = ANY ($2), false))', target, pk)
           INTO found USING ids, schools;
    ELSE
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s t WHERE t.%I = ANY ($1) '
                       'AND NOT EXISTS (SELECT 1 FROM public.students s WHERE s.id = t.student_id '
                       'AND s.school_id = ANY ($2)))', target, pk)
           INTO found USING ids, schools;
    END IF;
    RETURN found;
END
$$;

REVOKE ALL ON FUNCTION wxdata_outside_scope(regclass, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wxdata_outside_scope(regclass, uuid[]) TO wxdata_app;
