-- Foundation: extensions and the database roles wxdata expects.
-- Roles are cluster-wide; they are created once and only granted here (NOLOGIN: ops add LOGIN).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wxdata_app') THEN
        CREATE ROLE wxdata_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wxdata_auditor') THEN
        CREATE ROLE wxdata_auditor NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO wxdata_app, wxdata_auditor;
