-- The export outbox's high-water marks: for each configured sink, the last chain position shipped
-- and confirmed. Shipping is at least once: the mark moves only after the sink confirmed a batch,
-- so a sink that was down gets everything after its mark, in chain order, when it comes back.
CREATE TABLE audit_ship_mark (
    sink        varchar(200) PRIMARY KEY,
    position    bigint NOT NULL CHECK (position >= 0),
    shipped     bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON audit_ship_mark FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON audit_ship_mark TO wxdata_app;
GRANT SELECT ON audit_ship_mark TO wxdata_auditor;
