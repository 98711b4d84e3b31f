-- Every SECURITY DEFINER function searches the session's temporary schema last.
--
-- The scope's functions run as the owner and were declared with
-- `SET search_path = pg_catalog, public`. A search path that does not name pg_temp still searches
-- it, and for tables and views it searches it FIRST. The application role may create temporary
-- tables, so it could create `pg_temp.pg_index` or `pg_temp.pg_attribute` and have
-- `wxdata_outside_scope()` read them instead of the catalogue: the function would then compare a
-- column of the attacker's choosing (a student's medication id, say) instead of the primary key,
-- and answer, for rows of schools outside the caller's scope, whether that value is present. The
-- same shadowing reached `wxdata_scope_key_fingerprint()`'s unqualified `wxdata_scope_key`.
--
-- With pg_temp named last, every relation a definer function names resolves in pg_catalog or
-- public, which the application role cannot create objects in, before any temporary table
-- (PostgreSQL's documentation: "Writing SECURITY DEFINER Functions Safely"). The functions' bodies
-- are unchanged, and a function added later must carry the same setting
-- (tests/integration/test_scope_token.py checks every SECURITY DEFINER function of the schema).

DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prosecdef AND n.nspname = 'public'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, public, pg_temp', f);
    END LOOP;
END
$$;
