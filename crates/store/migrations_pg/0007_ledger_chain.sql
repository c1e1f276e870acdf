-- Model updates: a skill's model changed because of what it measured (tier 3's evidence that
-- the loop learns). Appended like outcomes, never updated.
CREATE TABLE model_updates (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            BIGINT NOT NULL,
    skill         TEXT   NOT NULL,
    model         TEXT   NOT NULL,
    from_version  TEXT   NOT NULL,
    to_version    TEXT   NOT NULL,
    triggered_by  TEXT   NOT NULL
);
CREATE INDEX model_updates_by_skill ON model_updates (skill, seq);

-- The hash chain over every ledger record (decisions, outcomes, model updates) in the order
-- they were written: `seq` from 1 without gaps, `prev` the hash of the entry before, `hash`
-- SHA-256 of seq, prev and the record's canonical JSON (crates/assess/src/ledger.rs). `row_seq`
-- is the record's `seq` in the table `kind` names. Editing, removing or inserting a record is
-- found at the first entry that no longer fits, by its `seq`.
CREATE TABLE ledger (
    seq      BIGINT PRIMARY KEY,
    kind     TEXT   NOT NULL CHECK (kind IN ('decision', 'outcome', 'model_update')),
    row_seq  BIGINT NOT NULL,
    prev     TEXT   NOT NULL,
    hash     TEXT   NOT NULL,
    UNIQUE (kind, row_seq)
);

CREATE TRIGGER model_updates_append_only BEFORE UPDATE OR DELETE ON model_updates
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER model_updates_no_truncate BEFORE TRUNCATE ON model_updates
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
