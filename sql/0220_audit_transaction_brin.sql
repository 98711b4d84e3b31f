-- The sealer finds the records a run may seal through a BRIN index on transaction_id instead of
-- the B-tree audit_log_transaction_idx.
--
-- A seal run reads the records whose transaction_id is at least the previous run's snapshot xmin
-- (wxdata.audit.chain.sealing); no other query asks transaction_id through an index. A record's
-- transaction_id is its writer's id, assigned at the transaction's first write: it grows with the
-- order records are appended, as created_at does, so a range of the log's pages holds a narrow
-- range of ids, and "at least the previous run's xmin" selects the newest ranges. A BRIN index
-- keeps one summary per range of pages; a record appended to a range not yet summarised costs it
-- nothing, where the B-tree took one insertion and one WAL record per audited read and write.
--
-- PostgreSQL has no BRIN operator class for xid8, so the index is on the id as a bigint (its text
-- form read back: both conversions are immutable, and an xid8 below 2^63 compares as its bigint
-- does). The sealer asks both conditions: the xid8 one, which decides what a run seals (unchanged),
-- and the bigint one, which the index serves and which holds for exactly the same records.
--
-- CREATE INDEX on the partitioned parent builds the index on every month and takes a SHARE lock on
-- each while it does: audited operations wait for the build. On a large log, run this migration in
-- a quiet window.

DROP INDEX audit_log_transaction_idx;
CREATE INDEX audit_log_transaction_brin ON audit_log
    USING brin (((transaction_id::text)::bigint)) WITH (pages_per_range = 32);
