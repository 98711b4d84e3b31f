-- audit_log partitioned by month on created_at, so the log can hold years: whole months past
-- retention are dropped (wxdata.audit.partitions) instead of deleted row by row, indexes stay
-- per month, and time-window reports read only the months they name.
--
--   * audit_log_pYYYYMM holds [first of the month, first of the next month); months are created
--     ahead by audit_log_ensure_partitions() (here, by `wxdata audit partitions`, and on migrate);
--   * audit_log_default holds whatever no month holds (records dated before the first month or
--     far ahead), so an insert never fails for want of a partition; a month is not created over
--     records already in the default partition (they stay there, purged row by row);
--   * the primary key is (id, created_at) and seq is unique per (seq, created_at): a unique index
--     on a partitioned table must contain the partition key. seq still comes from one identity
--     sequence; a duplicate seq or id can only be inserted with OVERRIDING SYSTEM VALUE, and the
--     chain's verify reports such a record (an unsealed record among sealed ones, or a seal
--     matching two records);
--   * audit_seal.audit_id no longer references audit_log (a foreign key would forbid dropping a
--     month that sealed records live in). verify checks the link itself: every seal's record must
--     exist with the seal's seq, or be covered by a keyed purge marker.
--
-- Existing records are copied into their months (ids, seqs and content unchanged, so every seal
-- still verifies), and the identity sequence continues where it was.

LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;

ALTER TABLE audit_seal DROP CONSTRAINT audit_seal_audit_id_fkey;
ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;

CREATE TABLE audit_log (
    seq                 bigint GENERATED ALWAYS AS IDENTITY,
    id                  uuid NOT NULL DEFAULT wxdata_uuid7(),
    action              varchar(50) NOT NULL CHECK (action IN (
        'CREATE','READ','UPDATE','DELETE','RESTORE','VIEW','EXPORT','PRINT','LOGIN','LOGOUT',
        'IMPORT','BULK_CREATE','BULK_UPDATE','BULK_DELETE','TRANSACTION_COMMIT',
        'TRANSACTION_ROLLBACK','CACHE_READ','CACHE_WRITE','CACHE_DELETE','ACCESS_DENIED',
        'BREAK_GLASS','AUTHENTICATION_FAILED','AUTHORIZATION_FAILED','RATE_LIMIT_EXCEEDED',
        'SERVER_ERROR','HEALTHCARE_ERROR','COMPLIANCE_ERROR','SECURITY_ERROR','APPLICATION_ERROR')),
    entity_type         varchar(100) NOT NULL,
    entity_id           uuid,
    entity_ids          uuid[] NOT NULL DEFAULT '{}',
    subject_student_id  uuid,
    subject_ids         uuid[] NOT NULL DEFAULT '{}',
    user_id             varchar(128),
    user_name           varchar(200),
    user_role           varchar(50),
    changes             jsonb,
    previous_values     jsonb,
    new_values          jsonb,
    fields_disclosed    text[] NOT NULL DEFAULT '{}',
    ip_address          varchar(45),
    user_agent          text,
    request_id          varchar(128),
    session_id          varchar(128),
    correlation_id      varchar(128),
    purpose             varchar(50),
    break_glass_reason  text,
    is_phi              boolean NOT NULL DEFAULT false,
    compliance_type     varchar(50) NOT NULL DEFAULT 'GENERAL'
                        CHECK (compliance_type IN ('HIPAA','FERPA','GDPR','GENERAL')),
    severity            varchar(50) NOT NULL DEFAULT 'LOW'
                        CHECK (severity IN ('LOW','MEDIUM','HIGH','CRITICAL')),
    success             boolean NOT NULL DEFAULT true,
    error_message       text,
    metadata            jsonb,
    tags                varchar(255)[] NOT NULL DEFAULT '{}',
    transaction_id      xid8 NOT NULL DEFAULT pg_current_xact_id(),
    legal_hold          boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp()
) PARTITION BY RANGE (created_at);

CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- Statement triggers do not reach partitions: every partition gets its own TRUNCATE guard.
CREATE FUNCTION audit_log_guard_partition(part regclass) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change()', part);
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', part);
END
$$;
SELECT audit_log_guard_partition('audit_log_default');

-- The partition of the month holding `month` (UTC), created unless it exists or the default
-- partition already holds records of that month (then they stay there); its name, or NULL.
CREATE FUNCTION audit_log_create_month(month timestamptz) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := lo + interval '1 month';
    name text := 'audit_log_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(name) IS NOT NULL
       OR EXISTS (SELECT 1 FROM audit_log_default d WHERE d.created_at >= lo AND d.created_at < hi)
    THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                   name, lo, hi);
    PERFORM audit_log_guard_partition(name::regclass);
    RETURN name;
END
$$;

-- Create the monthly partitions from the month of `from_ts` through `ahead` months after the
-- current month; returns the names created.
CREATE FUNCTION audit_log_ensure_partitions(ahead integer DEFAULT 3,
                                            from_ts timestamptz DEFAULT now())
    RETURNS SETOF text
    LANGUAGE plpgsql AS $$
DECLARE
    month timestamptz;
    last timestamptz;
    name text;
BEGIN
    IF ahead IS NULL OR ahead < 0 OR ahead > 120 THEN
        RAISE EXCEPTION 'ahead must be between 0 and 120 months'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    month := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    last := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
            + make_interval(months => ahead);
    WHILE month <= last LOOP
        name := audit_log_create_month(month);
        IF name IS NOT NULL THEN
            RETURN NEXT name;
        END IF;
        month := month + interval '1 month';
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION audit_log_create_month(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_log_ensure_partitions(integer, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_log_guard_partition(regclass) FROM PUBLIC;

SELECT count(*) FROM audit_log_ensure_partitions(
    3, coalesce((SELECT min(created_at) FROM audit_log_unpartitioned), now()));

INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * FROM audit_log_unpartitioned;

-- The identity continues after the highest seq ever handed out.
DO $$
DECLARE
    old_seq regclass := pg_get_serial_sequence('audit_log_unpartitioned', 'seq')::regclass;
    last_value bigint;
    called boolean;
BEGIN
    EXECUTE format('SELECT last_value, is_called FROM %s', old_seq) INTO last_value, called;
    PERFORM setval(pg_get_serial_sequence('audit_log', 'seq')::regclass, last_value, called);
END
$$;

-- The row-type functions of 0010/0205 belong to the old table: drop them with it, then restate
-- them for the new one (same bodies).
DROP TABLE audit_log_unpartitioned CASCADE;

CREATE FUNCTION audit_record_on_legal_hold(r audit_log) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT r.legal_hold OR EXISTS (
        SELECT 1 FROM audit_legal_hold_active h
        WHERE (h.student_id IS NOT NULL
               AND (r.subject_ids @> ARRAY[h.student_id] OR r.subject_student_id = h.student_id))
           OR (h.entity_type IS NOT NULL AND h.entity_id IS NOT NULL
               AND r.entity_type = h.entity_type
               AND (r.entity_id = h.entity_id OR r.entity_ids @> ARRAY[h.entity_id]))
           OR (h.entity_type IS NOT NULL AND h.entity_id IS NULL AND h.student_id IS NULL
               AND r.entity_type = h.entity_type)
           OR (h.user_id IS NOT NULL AND r.user_id = h.user_id))
$$;

CREATE FUNCTION audit_retention_floor(r audit_log) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN r.is_phi OR r.compliance_type IN ('HIPAA', 'FERPA')
                THEN interval '6 years' ELSE interval '1 year' END
$$;

CREATE FUNCTION audit_record_ferpa_kept(r audit_log) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (r.action IN ('READ', 'VIEW', 'PRINT', 'EXPORT', 'CACHE_READ')
            OR r.compliance_type = 'FERPA'
            OR coalesce(r.metadata ? 'disclosure', false))
       AND (r.subject_student_id IS NOT NULL OR cardinality(r.subject_ids) > 0)
       AND (NOT ((SELECT wxdata_scope_bypass())
                 OR coalesce((SELECT rolsuper OR rolbypassrls FROM pg_roles
                               WHERE rolname = current_user), false))
            OR EXISTS (SELECT 1 FROM students s
                        WHERE s.id = r.subject_student_id OR s.id = ANY (r.subject_ids)))
$$;

CREATE FUNCTION audit_record_held(r audit_log) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT audit_record_on_legal_hold(r) OR audit_record_ferpa_kept(r)
$$;

ALTER TABLE audit_log ADD PRIMARY KEY (id, created_at);
ALTER TABLE audit_log ADD CONSTRAINT audit_log_seq_key UNIQUE (seq, created_at);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_student_id, created_at);
CREATE INDEX audit_log_subjects_gin ON audit_log USING gin (subject_ids);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, created_at);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, created_at);
CREATE INDEX audit_log_created_brin ON audit_log USING brin (created_at) WITH (pages_per_range = 32);
CREATE INDEX audit_log_transaction_idx ON audit_log (transaction_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_purge_guard BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_purge_guard();

REVOKE ALL ON audit_log FROM PUBLIC;
GRANT SELECT, INSERT ON audit_log TO wxdata_app;
GRANT SELECT ON audit_log TO wxdata_auditor;
DO $$
BEGIN
    EXECUTE format('GRANT SELECT ON SEQUENCE %s TO wxdata_app, wxdata_auditor',
                   pg_get_serial_sequence('audit_log', 'seq'));
END
$$;
