-- Ingested telemetry as per-series compressed chunks (see src/ingest.rs for why), text and bytes
-- samples, the keys of ingested messages for exactly-once storage, and the quarantine. The same
-- tables as the SQLite migration of the same number, in PostgreSQL types.

CREATE TABLE ingest_series (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site    TEXT NOT NULL,
    node    TEXT NOT NULL,
    device  TEXT NOT NULL,
    metric  TEXT NOT NULL,
    UNIQUE (site, node, device, metric)
);

CREATE TABLE ingest_chunks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_id   BIGINT NOT NULL REFERENCES ingest_series (id),
    first_ms    BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    samples     BIGINT NOT NULL,
    timestamps  BYTEA  NOT NULL,
    vals        BYTEA  NOT NULL
);
CREATE INDEX ingest_chunks_by_series_time ON ingest_chunks (series_id, first_ms);

CREATE TABLE ingest_values (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_id   BIGINT NOT NULL REFERENCES ingest_series (id),
    at_ms       BIGINT NOT NULL,
    text_value  TEXT,
    bytes_value BYTEA
);
CREATE INDEX ingest_values_by_series_time ON ingest_values (series_id, at_ms);

CREATE TABLE ingest_messages (
    msg_key      BYTEA  PRIMARY KEY,
    committed_ms BIGINT NOT NULL
);

CREATE TABLE quarantine (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_ms  BIGINT NOT NULL,
    topic        TEXT   NOT NULL,
    reason_kind  TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    payload      BYTEA  NOT NULL
);
CREATE INDEX quarantine_by_kind ON quarantine (reason_kind);
