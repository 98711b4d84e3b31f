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

-- Held now means: under legal hold, or kept for FERPA. The legal-hold test keeps its body under a
-- new name; the purge guard and the retention queries call audit_record_held by name, so the rule
-- holds whoever deletes.
ALTER FUNCTION audit_record_held(audit_log) RENAME TO audit_record_on_legal_hold;

CREATE FUNCTION audit_record_held(r audit_log) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT audit_record_on_legal_hold(r) OR audit_record_ferpa_kept(r)
$$;
