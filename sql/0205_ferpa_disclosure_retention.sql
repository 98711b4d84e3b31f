-- FERPA 34 CFR 99.32(a)(2): the record of requests for and disclosures of a student's education
-- records is kept as long as those records are. A disclosure record (a read, view, print, export or
-- cache read naming students, any record carrying metadata.disclosure, or a FERPA record) is
-- therefore kept while any student it names still exists, whatever the retention policy says.
--
-- Fail closed: whether a student exists is only provable by a caller that sees every school (the
-- system scope, or a role that bypasses row security). For any other caller the record counts
-- as kept, so a scoped administrator cannot purge records of students outside their schools.
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

-- Held now means: under legal hold, or kept for FERPA. The purge guard and the retention queries
-- both go through this function, so the rule holds whoever deletes.
CREATE OR REPLACE FUNCTION audit_record_held(r audit_log) RETURNS boolean
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
       OR audit_record_ferpa_kept(r)
$$;
