-- Records are found by the row they are about through a GIN index on entity_ids instead of the
-- B-tree audit_log_entity_idx (entity_type, entity_id, created_at).
--
-- Every audited read and write inserts one record, so every index is paid on every operation. A
-- record's entity_id is a random UUID: the B-tree took each insertion on a random leaf page, which
-- on a log larger than shared memory is a page read and a page dirtied per record. A GIN index with
-- its default fast update appends new entries to a pending list and merges them in bulk (at vacuum,
-- or when the list reaches gin_pending_list_limit), so its insertion stays sequential however large
-- the log grows.
--
-- The B-tree also left a row's history without an index for the records that name the row only in
-- entity_ids (a page, an export, a bulk change): the history query's "entity_id = $1 OR entity_ids
-- @> ARRAY[$1]" had one unindexed arm, so PostgreSQL scanned the whole log. Both arms are indexed
-- now.
--
-- Every record wxdata writes that names one row lists it in entity_ids as well. A record written
-- otherwise (by hand, by an older writer) whose entity_id is missing from its entity_ids is kept in
-- audit_log_entity_unlisted_idx, a partial index that holds only such records (empty for wxdata's
-- own), so a query by row finds it too:
--
--     entity_ids @> ARRAY[$1]
--     OR (entity_id = $1 AND NOT (entity_ids @> ARRAY[entity_id]))   -- the partial index's rows
--
-- Nothing a query returns changes; only how it is found.

CREATE INDEX audit_log_entities_gin ON audit_log USING gin (entity_ids);
CREATE INDEX audit_log_entity_unlisted_idx ON audit_log (entity_id)
    WHERE entity_id IS NOT NULL AND NOT (entity_ids @> ARRAY[entity_id]);
DROP INDEX audit_log_entity_idx;
