-- Tokens that end, and proposals that outlive the server.
--
-- Every token (a login's or one an admin issued) has a public id (never the token or its hash),
-- a kind, an expiry and, once revoked, when and by whom. Tokens kept before this migration
-- expire 90 days after they were issued.
ALTER TABLE accounts_tokens ADD COLUMN id TEXT;
ALTER TABLE accounts_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
ALTER TABLE accounts_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE accounts_tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE accounts_tokens ADD COLUMN revoked_by TEXT;
UPDATE accounts_tokens SET id = 'tok-' || substr(token_sha256, 1, 16),
    expires_at = issued_at + 90 * CAST(86400000 AS BIGINT);
CREATE UNIQUE INDEX accounts_tokens_id ON accounts_tokens (id);

-- What-if proposals a person may approve. The sequence never gives a number twice (SQLite's
-- AUTOINCREMENT never reuses one, even after deletes), so an id names one proposal forever.
CREATE TABLE proposals (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at     BIGINT  NOT NULL,
    requested_by   TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    via            TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    machine        TEXT    NOT NULL,
    hours          REAL    NOT NULL,
    summary        TEXT    NOT NULL,
    plan_decision  TEXT,
    -- pending → approved | rejected, once
    status         TEXT    NOT NULL,
    decided_by     TEXT,
    decided_at     BIGINT,
    decision       TEXT
);
CREATE INDEX proposals_status ON proposals (status, seq);
