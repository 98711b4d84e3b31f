-- One GIN index finds a record both by the rows it names and by the students it is about:
-- audit_log_ids_gin on (entity_ids, subject_ids) replaces audit_log_entities_gin (entity_ids) and
-- audit_log_subjects_gin (subject_ids).
--
-- Every audited read and write inserts one record, and every index is paid on every insert. With
-- fast update on (the default), a GIN insertion collects the new record's keys and appends them to
-- the index's pending list: one page touched and one WAL record per index. A multicolumn GIN index
-- keys each entry by its column, so one index holds both arrays' keys and takes a record's keys in
-- one pending-list append: one index insertion and one WAL record fewer on every audited operation.
--
-- Queries are found as before. A multicolumn GIN index serves a condition on any subset of its
-- columns as well as a single-column index would (a search extracts the keys of the columns the
-- query names and reads only their posting lists), so "entity_ids @> ARRAY[$1]" (every query by
-- row) and "subject_ids @> ARRAY[$1]" (every query by student: the accounting of disclosures, the
-- export, the access report) keep their index path on every month. Nothing a query returns
-- changes.
--
-- CREATE INDEX on the partitioned parent builds the index on every month and takes a SHARE lock on
-- each while it does: audited operations wait for the build. On a large log, run this migration in
-- a quiet window.

CREATE INDEX audit_log_ids_gin ON audit_log USING gin (entity_ids, subject_ids);
DROP INDEX audit_log_entities_gin;
DROP INDEX audit_log_subjects_gin;
