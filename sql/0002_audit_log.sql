-- The HIPAA/FERPA audit trail: append-only in the database.
CREATE TABLE audit_log (
    seq                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
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
);

CREATE INDEX audit_log_subject_idx ON audit_log (subject_student_id, created_at);
CREATE INDEX audit_log_subjects_gin ON audit_log USING gin (subject_ids);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, created_at);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, created_at);
CREATE INDEX audit_log_created_idx ON audit_log (created_at);
CREATE INDEX audit_log_action_idx ON audit_log (action, entity_type, created_at);

-- Append-only: no UPDATE, DELETE or TRUNCATE, whoever asks (retention uses a guarded function).
CREATE FUNCTION audit_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('wxdata.retention_purge', true) = 'on' AND TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();

REVOKE ALL ON audit_log FROM PUBLIC;
GRANT SELECT, INSERT ON audit_log TO wxdata_app;
GRANT SELECT ON audit_log TO wxdata_auditor;
