-- Ingested telemetry as per-series compressed chunks (see src/ingest.rs for why), the keys of
-- ingested messages for exactly-once storage, and the quarantine of refused messages.

CREATE TABLE ingest_series (
    id      INTEGER PRIMARY KEY,
    site    TEXT NOT NULL,
    node    TEXT NOT NULL,
    device  TEXT NOT NULL,
    metric  TEXT NOT NULL,
    UNIQUE (site, node, device, metric)
);

CREATE TABLE ingest_chunks (
    id          INTEGER PRIMARY KEY,
    series_id   BIGINT NOT NULL REFERENCES ingest_series (id),
    first_ms    BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    samples     BIGINT NOT NULL,
    timestamps  BLOB   NOT NULL,
    vals        BLOB   NOT NULL
);
CREATE INDEX ingest_chunks_by_series_time ON ingest_chunks (series_id, first_ms);

-- Samples that are not numbers (states as text, raw bytes): few, so one row each.
CREATE TABLE ingest_values (
    id          INTEGER PRIMARY KEY,
    series_id   BIGINT NOT NULL REFERENCES ingest_series (id),
    at_ms       BIGINT NOT NULL,
    text_value  TEXT,
    bytes_value BLOB
);
CREATE INDEX ingest_values_by_series_time ON ingest_values (series_id, at_ms);

CREATE TABLE ingest_messages (
    msg_key      BLOB   PRIMARY KEY,
    committed_ms BIGINT NOT NULL
) WITHOUT ROWID;

CREATE TABLE quarantine (
    id           INTEGER PRIMARY KEY,
    received_ms  BIGINT NOT NULL,
    topic        TEXT   NOT NULL,
    reason_kind  TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    payload      BLOB   NOT NULL
);
CREATE INDEX quarantine_by_kind ON quarantine (reason_kind);
