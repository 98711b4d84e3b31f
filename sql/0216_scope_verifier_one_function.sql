-- The signed scope's verifier in one function. Row security runs wxdata_scope_schools() once per
-- statement that touches a scoped table, and for every call outside a unit of work that statement
-- is a transaction of its own. Measured inside the server (benchmarks/bench_scope_check.py), the
-- verifier cost about 25 µs per such statement, half of it plpgsql setting up again, in every
-- transaction, the statements and expressions of two functions: this one and the claims function
-- it called. It now does the whole check itself, reading the claims with split_part from the
-- signed message instead of building an array of its parts, with fewer expressions: about 20 µs.
--
-- Same answer for every token, signed or not, as the function it replaces (a property test
-- compares them on generated tokens):
--   * NULL when the token verifies and grants bypass;
--   * otherwise the verified school ids, never containing NULL or the nil UUID;
--   * '{}' for a missing, malformed, wrongly signed, stale or future token, or without a key.
-- The steps keep their order: the length and separator, the key, the HMAC (both digests hashed
-- again so the comparison's time says nothing about the expected MAC), the version, the issue
-- time's digits, the bypass flag, at least four fields, the age in the same numeric arithmetic,
-- then the schools (read, and so checked, before the bypass flag grants every school). wxdata_scope_claims() stays (wxdata_scope_bypass() and wxdata_school_ids() read it).
-- CREATE OR REPLACE keeps the function's owner, its grant to wxdata_app and the policies that
-- call it.

CREATE OR REPLACE FUNCTION wxdata_scope_schools() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    token text := current_setting('app.scope_token', true);
    n integer := coalesce(length(token), 0);
    message text;
    k record;
    age numeric;
    schools uuid[];
BEGIN
    IF n < 80 OR n > 200000 OR substr(token, n - 64, 1) <> '|' THEN
        RETURN '{}';
    END IF;
    message := left(token, n - 65);
    SELECT s.ipad, s.opad, s.max_age_seconds, s.skew_seconds INTO k FROM public.wxdata_scope_key s;
    IF NOT FOUND
       OR sha256(convert_to(encode(sha256(k.opad || sha256(k.ipad || convert_to(message, 'UTF8'))),
                                   'hex'), 'UTF8'))
          IS DISTINCT FROM sha256(convert_to(right(token, 64), 'UTF8'))
       OR split_part(message, '|', 1) <> '1'
       OR split_part(message, '|', 2) !~ '^[0-9]{1,12}$'
       OR split_part(message, '|', 3) NOT IN ('0', '1')
       OR message NOT LIKE '%|%|%|%' THEN
        RETURN '{}';
    END IF;
    age := extract(epoch FROM now()) - split_part(message, '|', 2)::numeric;
    IF age > k.max_age_seconds + k.skew_seconds OR age < -k.skew_seconds THEN
        RETURN '{}';
    END IF;
    -- the schools are read before the bypass flag is, as the claims function reads them: a
    -- signed token whose schools are not UUIDs is an error either way
    schools := coalesce(string_to_array(nullif(split_part(message, '|', 4), ''), ',')::uuid[],
                        '{}'::uuid[]);
    IF split_part(message, '|', 3) = '1' THEN
        RETURN NULL;
    END IF;
    RETURN array_remove(array_remove(schools, NULL), '00000000-0000-0000-0000-000000000000'::uuid);
END
$$;
