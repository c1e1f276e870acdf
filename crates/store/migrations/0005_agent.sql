-- The agent platform's records: actions that wait for (or had) a person's approval, every step
-- of every conversation (the audit log), and the tokens each model call used (metering).
-- Arguments, results and step contents are JSON text: the store keeps, never interprets them.
CREATE TABLE agent_actions (
    id            TEXT    NOT NULL PRIMARY KEY,
    created_at    BIGINT  NOT NULL,
    conversation  TEXT,
    tool          TEXT    NOT NULL,
    arguments     TEXT    NOT NULL,
    requested_by  TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    via           TEXT    NOT NULL,
    -- pending → approved → executed | failed, or pending → rejected
    status        TEXT    NOT NULL,
    decided_by    TEXT,
    decided_at    BIGINT,
    result        TEXT
);
CREATE INDEX agent_actions_status ON agent_actions (status, created_at);

CREATE TABLE agent_audit (
    conversation  TEXT    NOT NULL,
    step          BIGINT  NOT NULL,
    at            BIGINT  NOT NULL,
    user_name     TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    via           TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    content       TEXT    NOT NULL,
    PRIMARY KEY (conversation, step)
);
CREATE INDEX agent_audit_at ON agent_audit (at);

CREATE TABLE agent_usage (
    at                 BIGINT  NOT NULL,
    conversation       TEXT    NOT NULL,
    user_name          TEXT    NOT NULL,
    skill              TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    prompt_tokens      BIGINT  NOT NULL,
    completion_tokens  BIGINT  NOT NULL,
    elapsed_ms         BIGINT  NOT NULL
);
CREATE INDEX agent_usage_user ON agent_usage (user_name, skill);
