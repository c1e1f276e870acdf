-- Ingested numbers staged one row per commit, roll-ups for dashboards and the latest value of
-- every series: the same tables as the SQLite migration of the same number, in PostgreSQL types.

CREATE TABLE ingest_rollups (
    series_id  BIGINT NOT NULL REFERENCES ingest_series (id),
    width_ms   BIGINT NOT NULL,
    bucket_ms  BIGINT NOT NULL,
    samples    BIGINT NOT NULL,
    total      DOUBLE PRECISION NOT NULL,
    min_value  DOUBLE PRECISION NOT NULL,
    max_value  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, width_ms, bucket_ms)
);
CREATE INDEX ingest_rollups_by_age ON ingest_rollups (width_ms, bucket_ms);

CREATE TABLE ingest_latest (
    series_id  BIGINT PRIMARY KEY REFERENCES ingest_series (id),
    at_ms      BIGINT NOT NULL,
    value      DOUBLE PRECISION,
    text_value TEXT
);

CREATE INDEX ingest_chunks_by_age ON ingest_chunks (last_ms);
CREATE INDEX ingest_values_by_age ON ingest_values (at_ms);
CREATE INDEX ingest_messages_by_age ON ingest_messages (committed_ms);
CREATE INDEX quarantine_by_age ON quarantine (received_ms);

-- One row per commit: its numeric samples as three compressed columns (series ids, timestamps,
-- values), until they are folded into ingest_chunks.
CREATE TABLE ingest_staged (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_ms   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    samples    BIGINT NOT NULL,
    series_ids BYTEA  NOT NULL,
    timestamps BYTEA  NOT NULL,
    vals       BYTEA  NOT NULL
);
