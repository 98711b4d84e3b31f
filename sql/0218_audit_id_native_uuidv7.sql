-- On PostgreSQL 18 and later, a new audit record's id comes from the server's own uuidv7().
--
-- Every audited read and write inserts one record, and its id is a default evaluated in that
-- statement. wxdata_uuid7() (0210) builds a version 7 UUID in SQL: a random UUID, the clock in
-- milliseconds as numeric arithmetic, an overlay and two set_bit calls, rendered to hex and parsed
-- back. PostgreSQL 18 has uuidv7() built in (RFC 9562 version 7: 48-bit Unix milliseconds, then
-- sub-millisecond bits that keep one backend's ids increasing, then random bits): one function
-- call in place of that expression, on every record.
--
-- What the ids promise is unchanged: version 7, time-ordered (the primary key is appended at its
-- right edge), unique and unpredictable. Existing ids stay as they are. Before 18 the default
-- stays wxdata_uuid7(), which is kept.
--
-- Inserts go through audit_log, whose default applies before a record is routed to its month.

DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 180000 THEN
        EXECUTE 'ALTER TABLE audit_log ALTER COLUMN id SET DEFAULT uuidv7()';
    END IF;
END
$$;
