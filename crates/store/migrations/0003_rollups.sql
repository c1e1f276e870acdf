-- Ingested numbers staged one row per commit (folded into per-series chunks later; see
-- src/ingest.rs), roll-ups for dashboards (count, sum, min, max per series per minute or hour
-- bucket) and the latest value of every series. Queries merge in what is still staged, so they
-- never disagree with the raw data.

CREATE TABLE ingest_rollups (
    series_id  BIGINT NOT NULL REFERENCES ingest_series (id),
    width_ms   BIGINT NOT NULL,
    bucket_ms  BIGINT NOT NULL,
    samples    BIGINT NOT NULL,
    total      REAL   NOT NULL,
    min_value  REAL   NOT NULL,
    max_value  REAL   NOT NULL,
    PRIMARY KEY (series_id, width_ms, bucket_ms)
) WITHOUT ROWID;
CREATE INDEX ingest_rollups_by_age ON ingest_rollups (width_ms, bucket_ms);

CREATE TABLE ingest_latest (
    series_id  INTEGER PRIMARY KEY REFERENCES ingest_series (id),
    at_ms      BIGINT NOT NULL,
    value      REAL,
    text_value TEXT
);

-- Retention deletes by age.
CREATE INDEX ingest_chunks_by_age ON ingest_chunks (last_ms);
CREATE INDEX ingest_values_by_age ON ingest_values (at_ms);
CREATE INDEX ingest_messages_by_age ON ingest_messages (committed_ms);
CREATE INDEX quarantine_by_age ON quarantine (received_ms);

-- One row per commit: its numeric samples as three compressed columns (series ids, timestamps,
-- values), until they are folded into ingest_chunks.
CREATE TABLE ingest_staged (
    id         INTEGER PRIMARY KEY,
    first_ms   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    samples    BIGINT NOT NULL,
    series_ids BLOB  NOT NULL,
    timestamps BLOB  NOT NULL,
    vals       BLOB  NOT NULL
);
