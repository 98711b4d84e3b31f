-- One fewer B-tree insertion on every audited read and write: audit_log_subject_idx
-- (subject_student_id, created_at) goes. Every query by student (the accounting of disclosures,
-- the audit export, the student access report) asks subject_ids, which audit_log_subjects_gin
-- serves; every record wxdata writes that names one subject lists it in subject_ids too, so no
-- query reads the dropped index and none returns other rows without it.

DROP INDEX audit_log_subject_idx;
