-- Signed school scope. Row-level security no longer trusts the plain settings app.school_ids /
-- app.bypass_scope (any role can set those with set_config). wxdata sends, per transaction,
--
--     app.scope_token = '1|<issued-at epoch s>|<bypass 0/1>|<sorted school ids, comma-separated>|<role>|<user id>|<hmac>'
--
-- where <hmac> is the lowercase hex HMAC-SHA256, under the scope key, of everything before the last
-- '|'. The key lives in wxdata_scope_key, which only the owner (migration) role can read; the two
-- policy functions below are SECURITY DEFINER, verify the token once per statement (the policies
-- call them as initplans) and grant nothing for a missing, malformed, wrongly signed, stale or
-- future token.
--
-- HMAC is computed with the built-in sha256() (no pgcrypto needed): the table keeps the key's
-- precomputed inner and outer pad blocks, HMAC(m) = sha256(opad || sha256(ipad || m)).

CREATE TABLE wxdata_scope_key (
    id               boolean PRIMARY KEY DEFAULT true CHECK (id),
    ipad             bytea NOT NULL CHECK (length(ipad) = 64),
    opad             bytea NOT NULL CHECK (length(opad) = 64),
    max_age_seconds  integer NOT NULL DEFAULT 300 CHECK (max_age_seconds BETWEEN 1 AND 86400),
    skew_seconds     integer NOT NULL DEFAULT 30 CHECK (skew_seconds BETWEEN 0 AND 3600),
    installed_at     timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON wxdata_scope_key FROM PUBLIC;
REVOKE ALL ON wxdata_scope_key FROM wxdata_app;

-- The verified claims of the current token (nothing, when it does not verify). Internal: callable by
-- the owner only, i.e. through the SECURITY DEFINER functions below, which run it as the owner with
-- their fixed search_path. It has no SET clause of its own on purpose: a nested function with its
-- own search_path makes PostgreSQL re-plan its statements on every call (about 3x the cost).
CREATE FUNCTION wxdata_scope_claims(OUT bypass boolean, OUT school_ids uuid[])
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    token text := current_setting('app.scope_token', true);
    n integer;
    message text;
    parts text[];
    k record;
    age numeric;
BEGIN
    bypass := false;
    school_ids := '{}'::uuid[];
    n := coalesce(length(token), 0);
    IF n < 80 OR n > 200000 OR substr(token, n - 64, 1) <> '|' THEN
        RETURN;
    END IF;
    message := left(token, n - 65);
    SELECT s.ipad, s.opad, s.max_age_seconds, s.skew_seconds INTO k FROM public.wxdata_scope_key s;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- compare digests of both values so the comparison time says nothing about the expected MAC
    IF sha256(convert_to(encode(sha256(k.opad || sha256(k.ipad || convert_to(message, 'UTF8'))),
                                'hex'), 'UTF8'))
       IS DISTINCT FROM sha256(convert_to(right(token, 64), 'UTF8')) THEN
        RETURN;
    END IF;
    parts := string_to_array(message, '|');
    IF parts[1] IS DISTINCT FROM '1' OR parts[2] !~ '^[0-9]{1,12}$'
       OR parts[3] NOT IN ('0', '1') OR parts[4] IS NULL THEN
        RETURN;
    END IF;
    age := extract(epoch FROM now()) - parts[2]::numeric;
    IF age > k.max_age_seconds + k.skew_seconds OR age < -k.skew_seconds THEN
        RETURN;
    END IF;
    bypass := parts[3] = '1';
    school_ids := coalesce(string_to_array(nullif(parts[4], ''), ',')::uuid[], '{}'::uuid[]);
END
$$;
REVOKE ALL ON FUNCTION wxdata_scope_claims() FROM PUBLIC;

CREATE OR REPLACE FUNCTION wxdata_scope_bypass() RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$ BEGIN RETURN (public.wxdata_scope_claims()).bypass; END $$;

CREATE OR REPLACE FUNCTION wxdata_school_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$ BEGIN RETURN (public.wxdata_scope_claims()).school_ids; END $$;

-- A short HMAC of a fixed label: lets wxdata check, on first use of a connection, that its key is
-- the database's (without either side revealing the key). NULL when no key is installed.
CREATE FUNCTION wxdata_scope_key_fingerprint() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$ SELECT left(encode(sha256(opad || sha256(ipad || convert_to('wxdata scope key fingerprint',
                                                                       'UTF8'))), 'hex'), 16)
            FROM wxdata_scope_key $$;

GRANT EXECUTE ON FUNCTION wxdata_scope_bypass(), wxdata_school_ids(), wxdata_scope_key_fingerprint()
    TO wxdata_app;
