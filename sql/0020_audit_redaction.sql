-- The redaction rules of wxdata.audit.redact, for the audit snapshots and diffs that PostgreSQL
-- computes (wxdata.audit.sql): one registry, two renderings. The regular expressions are those of
-- redact.SECRET_PARTS_RE / SECRET_TOKENS_RE / CAMEL_RE; tests/test_audit_redaction.py checks that
-- these functions and the Python functions agree (change both through a new migration).

-- is_secret_name(): normal form (- to _, camelCase split, lower case); secret when the compact form
-- (no _) contains a secret fragment, or the normal form contains a secret word as whole tokens.
CREATE FUNCTION wxdata_audit_secret_name(name text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT replace(n, '_', '') ~ '(password|passwd|passphrase|secret|token|apikey|privatekey|accesskey|signingkey|sessionkey|encryptionkey|hmackey|cachekey|socialsecurity|creditcard|cardnumber|bankaccount|backupcode|recoverycode)'
        OR n ~ '(^|_)(ssn|otp|pwd|pin|salt|cvv|cvc|tax_?id)(_|$)'
      FROM (SELECT lower(regexp_replace(replace(name, '-', '_'), '([a-z0-9])([A-Z])', '\1_\2', 'g')) AS n) s
$$;

-- scrub(): the document with the value of every secret-named key, at any depth, replaced by the
-- marker. A jsonpath test (a superset of the name rule) returns most documents untouched at once.
CREATE FUNCTION wxdata_audit_scrub(doc jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
DECLARE
    secret_path text[];
    scrubbed jsonb := doc;
BEGIN
    IF doc IS NULL OR NOT jsonb_path_exists(doc,
        'lax $.** ? (@.type() == "object").keyvalue() ? (@.key like_regex "(p[-_]*a[-_]*s[-_]*s[-_]*w[-_]*o[-_]*r[-_]*d|p[-_]*a[-_]*s[-_]*s[-_]*w[-_]*d|p[-_]*a[-_]*s[-_]*s[-_]*p[-_]*h[-_]*r[-_]*a[-_]*s[-_]*e|s[-_]*e[-_]*c[-_]*r[-_]*e[-_]*t|t[-_]*o[-_]*k[-_]*e[-_]*n|a[-_]*p[-_]*i[-_]*k[-_]*e[-_]*y|p[-_]*r[-_]*i[-_]*v[-_]*a[-_]*t[-_]*e[-_]*k[-_]*e[-_]*y|a[-_]*c[-_]*c[-_]*e[-_]*s[-_]*s[-_]*k[-_]*e[-_]*y|s[-_]*i[-_]*g[-_]*n[-_]*i[-_]*n[-_]*g[-_]*k[-_]*e[-_]*y|s[-_]*e[-_]*s[-_]*s[-_]*i[-_]*o[-_]*n[-_]*k[-_]*e[-_]*y|e[-_]*n[-_]*c[-_]*r[-_]*y[-_]*p[-_]*t[-_]*i[-_]*o[-_]*n[-_]*k[-_]*e[-_]*y|h[-_]*m[-_]*a[-_]*c[-_]*k[-_]*e[-_]*y|c[-_]*a[-_]*c[-_]*h[-_]*e[-_]*k[-_]*e[-_]*y|s[-_]*o[-_]*c[-_]*i[-_]*a[-_]*l[-_]*s[-_]*e[-_]*c[-_]*u[-_]*r[-_]*i[-_]*t[-_]*y|c[-_]*r[-_]*e[-_]*d[-_]*i[-_]*t[-_]*c[-_]*a[-_]*r[-_]*d|c[-_]*a[-_]*r[-_]*d[-_]*n[-_]*u[-_]*m[-_]*b[-_]*e[-_]*r|b[-_]*a[-_]*n[-_]*k[-_]*a[-_]*c[-_]*c[-_]*o[-_]*u[-_]*n[-_]*t|b[-_]*a[-_]*c[-_]*k[-_]*u[-_]*p[-_]*c[-_]*o[-_]*d[-_]*e|r[-_]*e[-_]*c[-_]*o[-_]*v[-_]*e[-_]*r[-_]*y[-_]*c[-_]*o[-_]*d[-_]*e|ssn|otp|pwd|pin|salt|cvv|cvc|tax[-_]*id)" flag "i")')
    THEN
        RETURN doc;
    END IF;
    FOR secret_path IN
        WITH RECURSIVE t(p, v) AS (
            SELECT ARRAY[]::text[], doc
            UNION ALL
            SELECT t.p || e.k, e.v
              FROM t CROSS JOIN LATERAL (
                   SELECT o.key, o.value
                     FROM jsonb_each(CASE WHEN jsonb_typeof(t.v) = 'object' THEN t.v END) o
                   UNION ALL
                   SELECT (a.n - 1)::text, a.value
                     FROM jsonb_array_elements(CASE WHEN jsonb_typeof(t.v) = 'array' THEN t.v END)
                          WITH ORDINALITY a(value, n)) e(k, v)
             WHERE cardinality(t.p) = 0 OR NOT wxdata_audit_secret_name(t.p[cardinality(t.p)]))
        SELECT t.p FROM t
         WHERE cardinality(t.p) > 0 AND wxdata_audit_secret_name(t.p[cardinality(t.p)])
    LOOP
        scrubbed := jsonb_set(scrubbed, secret_path, '"[SECRET]"');
    END LOOP;
    RETURN scrubbed;
END
$$;
