-- The log's three closed vocabularies (action, compliance_type, severity) become enum types
-- instead of domains over varchar.
--
-- Every audited read and write inserts one record naming its action, compliance type and severity
-- as literals ('READ', 'HIPAA', 'MEDIUM'). Into a domain column, each literal is coerced to the
-- domain, and a prepared statement sets up the domain's check again on every execution: 9,416
-- server instructions per record for the three on PostgreSQL 15 (8,485 on 18), about a fiftieth
-- of an audited read by id (`python -m benchmarks.bench_server_instructions --only vocabularies
-- --only "unpartitioned copy"`). A literal of an enum type is read into its label's value when the
-- statement is planned, and a value outside the type is refused on input: an enum copy of the log
-- costs what one with no check at all does.
--
-- What is accepted and refused is unchanged: a value of the lists, from any writer, as a literal
-- or as a text or varchar value (an assignment cast from each, as the domains' base type took
-- them: `INSERT ... SELECT a FROM (VALUES ('READ')) v(a)` still writes a record); any other value
-- is refused (now as an invalid input value, SQLSTATE 22P02, where the domain's check raised
-- 23514). The stored values read back as the same text, so the chain's canonical form of every
-- record, and so every hash, is unchanged. Labels are declared in alphabetical order, so that
-- ordering by one of these columns orders as the text did.
--
-- Changing a column's type rewrites the log, every month of it, under an ACCESS EXCLUSIVE lock:
-- audited operations wait for the rewrite. On a large log, run this migration in a quiet window.

CREATE TYPE audit_action_labels AS ENUM (
    'ACCESS_DENIED', 'APPLICATION_ERROR', 'AUTHENTICATION_FAILED', 'AUTHORIZATION_FAILED',
    'BREAK_GLASS', 'BULK_CREATE', 'BULK_DELETE', 'BULK_UPDATE', 'CACHE_DELETE', 'CACHE_READ',
    'CACHE_WRITE', 'COMPLIANCE_ERROR', 'CREATE', 'DELETE', 'EXPORT', 'HEALTHCARE_ERROR', 'IMPORT',
    'LOGIN', 'LOGOUT', 'PRINT', 'RATE_LIMIT_EXCEEDED', 'READ', 'RESTORE', 'SECURITY_ERROR',
    'SERVER_ERROR', 'TRANSACTION_COMMIT', 'TRANSACTION_ROLLBACK', 'UPDATE', 'VIEW');
CREATE TYPE audit_compliance_type_labels AS ENUM ('FERPA', 'GDPR', 'GENERAL', 'HIPAA');
CREATE TYPE audit_severity_labels AS ENUM ('CRITICAL', 'HIGH', 'LOW', 'MEDIUM');

ALTER TABLE audit_log
    ALTER COLUMN compliance_type DROP DEFAULT,
    ALTER COLUMN severity DROP DEFAULT,
    ALTER COLUMN action TYPE audit_action_labels USING action::text::audit_action_labels,
    ALTER COLUMN compliance_type TYPE audit_compliance_type_labels
        USING compliance_type::text::audit_compliance_type_labels,
    ALTER COLUMN severity TYPE audit_severity_labels USING severity::text::audit_severity_labels;

DROP DOMAIN audit_action;
DROP DOMAIN audit_compliance_type;
DROP DOMAIN audit_severity;
ALTER TYPE audit_action_labels RENAME TO audit_action;
ALTER TYPE audit_compliance_type_labels RENAME TO audit_compliance_type;
ALTER TYPE audit_severity_labels RENAME TO audit_severity;

ALTER TABLE audit_log
    ALTER COLUMN compliance_type SET DEFAULT 'GENERAL',
    ALTER COLUMN severity SET DEFAULT 'LOW';

CREATE CAST (text AS audit_action) WITH INOUT AS ASSIGNMENT;
CREATE CAST (varchar AS audit_action) WITH INOUT AS ASSIGNMENT;
CREATE CAST (text AS audit_compliance_type) WITH INOUT AS ASSIGNMENT;
CREATE CAST (varchar AS audit_compliance_type) WITH INOUT AS ASSIGNMENT;
CREATE CAST (text AS audit_severity) WITH INOUT AS ASSIGNMENT;
CREATE CAST (varchar AS audit_severity) WITH INOUT AS ASSIGNMENT;
