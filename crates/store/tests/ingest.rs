//! Ingested telemetry on SQLite: samples come back exactly from compressed chunks, a
//! redelivered message is stored once, text values and the quarantine are kept.

use aifactory_store::SqliteStore;
use aifactory_store::ingest::{
    IngestBatch, IngestMessage, OtherSample, OtherValue, QuarantineRow, Sample, SeriesName,
};

fn series(metric: &str) -> SeriesName {
    SeriesName {
        site: "hz".into(),
        node: "line-1".into(),
        device: "cnc-1".into(),
        metric: metric.into(),
    }
}

fn message(key: u8, metric: &str, from_ms: i64, n: i64) -> IngestMessage {
    IngestMessage {
        key: Some([key; 16]),
        samples: (0..n)
            .map(|i| Sample {
                series: series(metric),
                at_ms: from_ms + i,
                value: (from_ms + i) as f64 * 0.5,
            })
            .collect(),
        others: Vec::new(),
    }
}

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = SqliteStore::open(&dir.path().join("plant.sqlite"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, store)
}

#[tokio::test]
async fn samples_round_trip_and_a_redelivered_message_is_stored_once() {
    let (_dir, store) = store().await;
    let first = IngestBatch {
        messages: vec![
            message(1, "temp", 1_000, 100),
            message(2, "temp", 1_100, 100),
        ],
        quarantined: Vec::new(),
    };
    let r = store
        .commit_ingest(&first, 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (r.messages, r.duplicates, r.samples, r.chunks),
        (2, 0, 200, 1)
    );
    // After a crash the broker redelivers message 2 with a new one.
    let again = IngestBatch {
        messages: vec![
            message(2, "temp", 1_100, 100),
            message(3, "temp", 1_200, 50),
        ],
        quarantined: Vec::new(),
    };
    let r = store
        .commit_ingest(&again, 6)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.duplicates, r.samples), (1, 50));
    let got = store
        .samples(&series("temp"), 0, i64::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), 250);
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "in time order, no duplicates"
    );
    assert!(got.iter().all(|&(t, v)| v == t as f64 * 0.5));
    let window = store
        .samples(&series("temp"), 1_150, 1_160)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(window.len(), 11);
    let counts = store
        .series_counts()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.get(&series("temp")), Some(&250));
}

#[tokio::test]
async fn text_values_and_quarantined_messages_are_kept() {
    let (_dir, store) = store().await;
    let batch = IngestBatch {
        messages: vec![IngestMessage {
            key: None,
            samples: Vec::new(),
            others: vec![OtherSample {
                series: series("event"),
                at_ms: 7,
                value: OtherValue::Text("machine_failed".into()),
            }],
        }],
        quarantined: vec![QuarantineRow {
            received_ms: 9,
            topic: "spBv1.0/hz/DDATA/line-1/cnc-1".into(),
            reason_kind: "malformed_protobuf".into(),
            reason: "not a Sparkplug B protobuf payload".into(),
            payload: vec![0x0A, 0xFF],
        }],
    };
    let r = store
        .commit_ingest(&batch, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.others, r.quarantined), (1, 1));
    let events = store
        .other_samples(&series("event"), 0, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events, vec![(7, OtherValue::Text("machine_failed".into()))]);
    let q = store
        .quarantined(10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(q, batch.quarantined);
}

#[tokio::test]
async fn a_non_finite_sample_refuses_the_whole_batch() {
    let (_dir, store) = store().await;
    let mut bad = message(1, "temp", 0, 3);
    bad.samples[1].value = f64::NAN;
    let batch = IngestBatch {
        messages: vec![message(2, "temp", 10, 3), bad],
        quarantined: Vec::new(),
    };
    assert!(store.commit_ingest(&batch, 0).await.is_err());
    let got = store
        .samples(&series("temp"), 0, i64::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(got.is_empty(), "nothing of a refused batch is stored");
}
