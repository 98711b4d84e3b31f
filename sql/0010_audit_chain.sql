-- Tamper evidence, retention and legal hold for audit_log (wxdata.audit.chain / retention).
--
-- Writers never touch these tables: a sealer (one at a time, advisory lock) chains committed
-- audit records into audit_seal after the fact, so no audited transaction waits on the chain.
-- The HMAC key lives outside the database; nothing here can compute or check a hash.

-- The sealer finds new records by the transaction that wrote them (see chain.py, "floor").
CREATE INDEX audit_log_transaction_idx ON audit_log (transaction_id);

-- One row per sealed audit record; position is the chain order.
-- hash = HMAC(key, 'wxac1' || prev_hash || be64(position) || canonical(record)).
CREATE TABLE audit_seal (
    position    bigint PRIMARY KEY CHECK (position > 0),
    -- NULL only after a retention purge (ON DELETE SET NULL, allowed by the guard below).
    audit_id    uuid UNIQUE REFERENCES audit_log (id) ON DELETE SET NULL,
    audit_seq   bigint NOT NULL,
    prev_hash   bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash        bytea NOT NULL CHECK (octet_length(hash) = 32),
    sealed_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per sealing run that sealed something: the snapshot it sealed under (every record
-- visible in it is sealed once the run commits) and the audit_log sequence high-water mark.
CREATE TABLE audit_seal_run (
    run_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    snapshot        pg_snapshot NOT NULL,
    seq_hwm         bigint NOT NULL,
    first_position  bigint NOT NULL,
    last_position   bigint NOT NULL,
    sealed          integer NOT NULL CHECK (sealed > 0),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    mac             bytea NOT NULL CHECK (octet_length(mac) = 32),
    CHECK (last_position - first_position + 1 = sealed)
);

-- Retention purges: one checkpoint per purge, one keyed marker per purged chain position, so
-- verification tells a purged record from a deleted one.
CREATE TABLE audit_purge (
    purge_id      bigserial PRIMARY KEY,
    purged_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    phi_cutoff    timestamptz NOT NULL,
    other_cutoff  timestamptz NOT NULL,
    purged        bigint NOT NULL CHECK (purged >= 0),
    held          bigint NOT NULL CHECK (held >= 0),
    user_id       varchar(128) NOT NULL,
    mac           bytea NOT NULL CHECK (octet_length(mac) = 32)
);

CREATE TABLE audit_purged (
    position  bigint PRIMARY KEY REFERENCES audit_seal (position),
    purge_id  bigint NOT NULL REFERENCES audit_purge (purge_id),
    mac       bytea NOT NULL CHECK (octet_length(mac) = 32)
);
CREATE INDEX audit_purged_purge_idx ON audit_purged (purge_id);

-- Legal holds, append-only: a hold is placed by a PLACE row and lifted by a RELEASE row naming it.
CREATE TABLE audit_legal_hold (
    hold_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         varchar(10) NOT NULL CHECK (kind IN ('PLACE', 'RELEASE')),
    releases     bigint REFERENCES audit_legal_hold (hold_id),
    student_id   uuid,
    entity_type  varchar(100),
    entity_id    uuid,
    user_id      varchar(128),
    case_ref     varchar(128) NOT NULL,
    created_by   varchar(128) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((kind = 'RELEASE') = (releases IS NOT NULL)),
    CHECK (kind = 'RELEASE' OR num_nonnulls(student_id, entity_type, user_id) >= 1),
    CHECK (entity_id IS NULL OR entity_type IS NOT NULL)
);
CREATE UNIQUE INDEX audit_legal_hold_release_once ON audit_legal_hold (releases)
    WHERE releases IS NOT NULL;

CREATE VIEW audit_legal_hold_active AS
    SELECT h.hold_id, h.student_id, h.entity_type, h.entity_id, h.user_id, h.case_ref,
           h.created_by, h.created_at
    FROM audit_legal_hold h
    WHERE h.kind = 'PLACE'
      AND NOT EXISTS (SELECT 1 FROM audit_legal_hold r WHERE r.releases = h.hold_id);

-- Whether a record is under legal hold (its own flag, or an active hold on its student,
-- entity, entity type or user). Used by the retention queries and by the purge guard.
CREATE FUNCTION audit_record_held(r audit_log) RETURNS boolean
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

-- The hard retention floor, whatever the configured policy: 6 years for PHI / HIPAA / FERPA
-- records, 1 year for the rest.
CREATE FUNCTION audit_retention_floor(r audit_log) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN r.is_phi OR r.compliance_type IN ('HIPAA', 'FERPA')
                THEN interval '6 years' ELSE interval '1 year' END
$$;

-- Append-only guards.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% rejected)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- audit_seal rows change in one way only: a retention purge deleting the sealed record sets
-- audit_id to NULL (the foreign key's ON DELETE SET NULL); everything else is rejected.
CREATE FUNCTION audit_seal_guard_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('wxdata.retention_purge', true) = 'on'
       AND OLD.audit_id IS NOT NULL AND NEW.audit_id IS NULL
       AND NEW.position = OLD.position AND NEW.audit_seq = OLD.audit_seq
       AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
       AND NEW.sealed_at = OLD.sealed_at THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_seal is append-only (UPDATE rejected)'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_seal_no_update BEFORE UPDATE ON audit_seal
    FOR EACH ROW EXECUTE FUNCTION audit_seal_guard_update();
CREATE TRIGGER audit_seal_no_delete BEFORE DELETE ON audit_seal
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_seal_no_truncate BEFORE TRUNCATE ON audit_seal
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_seal_run_no_change BEFORE UPDATE OR DELETE ON audit_seal_run
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_seal_run_no_truncate BEFORE TRUNCATE ON audit_seal_run
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_purge_no_change BEFORE UPDATE OR DELETE ON audit_purge
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_purge_no_truncate BEFORE TRUNCATE ON audit_purge
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_purged_no_change BEFORE UPDATE OR DELETE ON audit_purged
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_purged_no_truncate BEFORE TRUNCATE ON audit_purged
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_legal_hold_no_change BEFORE UPDATE OR DELETE ON audit_legal_hold
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_legal_hold_no_truncate BEFORE TRUNCATE ON audit_legal_hold
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The purge path (wxdata.retention_purge = on, set by the 0002 trigger's contract) may delete
-- only records that are past the hard floor, not held, and checkpointed by a keyed purge marker.
CREATE FUNCTION audit_log_purge_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF audit_record_held(OLD) THEN
        RAISE EXCEPTION 'audit record is under legal hold' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.created_at >= now() - audit_retention_floor(OLD) THEN
        RAISE EXCEPTION 'audit record is within the retention floor'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_seal s JOIN audit_purged p ON p.position = s.position
                   WHERE s.audit_id = OLD.id) THEN
        RAISE EXCEPTION 'audit record has no purge checkpoint' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER audit_log_purge_guard BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_purge_guard();

REVOKE ALL ON audit_seal, audit_seal_run, audit_purge, audit_purged, audit_legal_hold,
    audit_legal_hold_active FROM PUBLIC;
GRANT SELECT, INSERT ON audit_seal, audit_seal_run, audit_legal_hold TO wxdata_app;
GRANT SELECT ON audit_purge, audit_purged, audit_legal_hold_active TO wxdata_app;
GRANT SELECT ON audit_seal, audit_seal_run, audit_purge, audit_purged, audit_legal_hold,
    audit_legal_hold_active TO wxdata_auditor;

-- The sealer reads the audit sequence's high-water mark (pg_sequence_last_value).
DO $$
BEGIN
    EXECUTE format('GRANT SELECT ON SEQUENCE %s TO wxdata_app, wxdata_auditor',
                   pg_get_serial_sequence('audit_log', 'seq'));
END
$$;
