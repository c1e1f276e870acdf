-- The first schema of the store's PostgreSQL engine: `migrations/0001_initial.sql` (SQLite)
-- with these changes and no others, so that both engines keep the same tables and columns:
--   * `INTEGER PRIMARY KEY` sequence columns are `BIGINT GENERATED ALWAYS AS IDENTITY`, so a
--     caller can never choose a sequence number;
--   * REAL is DOUBLE PRECISION (SQLite's REAL is already 8 bytes);
--   * `decision_outcomes.success` is BOOLEAN, because PostgreSQL does not cast a bound bool
--     to INTEGER the way SQLite stores one;
--   * the append-only triggers are one PL/pgSQL function, plus statement triggers refusing
--     TRUNCATE, which SQLite does not have and row triggers do not see.
-- Unqualified names throughout, so that the schema lands in the first schema of the
-- connection's `search_path` and several stores (or tests) can share one database.

CREATE TABLE sites (
    id              TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL,
    name_zh         TEXT,
    industry        TEXT    NOT NULL,
    currency        TEXT    NOT NULL,
    start_at        BIGINT  NOT NULL,
    utc_offset_min  INTEGER NOT NULL
);

CREATE TABLE areas (
    site_id  TEXT NOT NULL REFERENCES sites (id),
    id       TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (site_id, id)
);

CREATE TABLE lines (
    site_id  TEXT NOT NULL REFERENCES sites (id),
    id       TEXT NOT NULL,
    name     TEXT NOT NULL,
    area_id  TEXT NOT NULL,
    PRIMARY KEY (site_id, id),
    FOREIGN KEY (site_id, area_id) REFERENCES areas (site_id, id)
);

CREATE TABLE work_centres (
    site_id  TEXT NOT NULL REFERENCES sites (id),
    id       TEXT NOT NULL,
    name     TEXT NOT NULL,
    line_id  TEXT,
    kind     TEXT NOT NULL,
    PRIMARY KEY (site_id, id),
    FOREIGN KEY (site_id, line_id) REFERENCES lines (site_id, id)
);

-- Only the nameplate facts of a machine type: the health and sensor models in a plant file
-- are the twin's hidden truth and must not leak into data that skills read.
CREATE TABLE machine_types (
    site_id        TEXT             NOT NULL REFERENCES sites (id),
    id             TEXT             NOT NULL,
    name           TEXT             NOT NULL,
    power_run_kw   DOUBLE PRECISION NOT NULL,
    power_idle_kw  DOUBLE PRECISION NOT NULL,
    power_down_kw  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (site_id, id)
);

CREATE TABLE machines (
    site_id          TEXT NOT NULL REFERENCES sites (id),
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    work_centre_id   TEXT NOT NULL,
    machine_type_id  TEXT NOT NULL,
    -- site/area/line/work centre/machine, absent levels skipped: the key a UI or an agent
    -- filters the hierarchy by without recursive joins.
    equipment_path   TEXT NOT NULL,
    PRIMARY KEY (site_id, id),
    FOREIGN KEY (site_id, work_centre_id) REFERENCES work_centres (site_id, id),
    FOREIGN KEY (site_id, machine_type_id) REFERENCES machine_types (site_id, id)
);

CREATE TABLE materials (
    site_id         TEXT             NOT NULL REFERENCES sites (id),
    id              TEXT             NOT NULL,
    name            TEXT             NOT NULL,
    unit            TEXT             NOT NULL,
    unit_cost       DOUBLE PRECISION NOT NULL,
    lead_time_days  DOUBLE PRECISION NOT NULL,
    reorder_point   DOUBLE PRECISION NOT NULL,
    order_qty       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (site_id, id)
);

CREATE TABLE products (
    site_id   TEXT             NOT NULL REFERENCES sites (id),
    id        TEXT             NOT NULL,
    name      TEXT             NOT NULL,
    name_zh   TEXT,
    price     DOUBLE PRECISION NOT NULL,
    lot_size  BIGINT           NOT NULL,
    PRIMARY KEY (site_id, id)
);

-- One simulation run. Events and telemetry with a NULL run are live plant data.
CREATE TABLE runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     TEXT             NOT NULL REFERENCES sites (id),
    -- The u64 seed stored bit for bit in a signed 64-bit column (neither engine has unsigned).
    seed        BIGINT           NOT NULL,
    policy      TEXT             NOT NULL,
    sim_days    DOUBLE PRECISION NOT NULL,
    started_at  BIGINT           NOT NULL
);

-- Events and telemetry name machines by id without a foreign key: live data may arrive
-- before its master data, and quarantining unknown equipment is the adapters' job.
CREATE TABLE events (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    BIGINT REFERENCES runs (id),
    at        BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    machine   TEXT,
    order_id  TEXT,
    detail    TEXT   NOT NULL
);
CREATE INDEX events_by_run_time ON events (run_id, at);

-- Each (machine, signal) pair is stored once so that a telemetry row is four numbers: the
-- hot path writes and scans far fewer bytes than with the names repeated on every row.
CREATE TABLE telemetry_series (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine  TEXT NOT NULL,
    signal   TEXT NOT NULL,
    UNIQUE (machine, signal)
);

CREATE TABLE telemetry (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     BIGINT REFERENCES runs (id),
    series_id  BIGINT           NOT NULL REFERENCES telemetry_series (id),
    at         BIGINT           NOT NULL,
    value      DOUBLE PRECISION NOT NULL
);
CREATE INDEX telemetry_by_series_time ON telemetry (run_id, series_id, at);

-- KPIs as name/value rows so that a new KPI needs no migration.
CREATE TABLE run_kpis (
    run_id  BIGINT           NOT NULL REFERENCES runs (id),
    name    TEXT             NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, name)
);

-- The decision ledger. `seq` orders decisions recorded at the same instant; `id` is the
-- caller's and unique, so a second record with the same id is refused rather than merged.
CREATE TABLE decisions (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT   NOT NULL UNIQUE,
    at             BIGINT NOT NULL,
    skill          TEXT   NOT NULL,
    stage          TEXT   NOT NULL,
    inputs_ref     TEXT   NOT NULL,
    model          TEXT   NOT NULL,
    model_version  TEXT   NOT NULL,
    output         TEXT   NOT NULL,
    confidence     DOUBLE PRECISION,
    executed_by    TEXT   NOT NULL
);
CREATE INDEX decisions_by_time ON decisions (at, seq);

-- Outcomes are appended, never updated: a re-measurement adds a row and the latest one is
-- the decision's outcome, so the audit trail keeps every measurement.
CREATE TABLE decision_outcomes (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id  TEXT   NOT NULL REFERENCES decisions (id),
    measured_at  BIGINT NOT NULL,
    measured     TEXT   NOT NULL,
    success      BOOLEAN
);
CREATE INDEX decision_outcomes_by_decision ON decision_outcomes (decision_id, seq);

-- The ledger is evidence for the tier assessment: the engine itself refuses to rewrite it,
-- whoever connects. One function serves every trigger; raising aborts the statement.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the decision ledger is append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER decision_outcomes_append_only BEFORE UPDATE OR DELETE ON decision_outcomes
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER decision_outcomes_no_truncate BEFORE TRUNCATE ON decision_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
