//! Ingest onto the store: connect's [`Sink`] committing Sparkplug B and aifactory JSON batches
//! (each message acknowledged only after its commit), and [`IngestTask`], ingest as a task of
//! the caller's runtime for hosts that feed the broker themselves.

use crate::clock::Clock;
use aifactory_connect::Value;
use aifactory_connect::mqtt::{
    Batch, BrokerAddress, IngestOptions, IngestStats, MqttError, Sink, ingest,
};
use aifactory_store::Store;
use aifactory_store::ingest::{
    IngestBatch, IngestMessage, OtherSample, OtherValue, QuarantineRow, Sample,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};

/// Why ingest did not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingest did not subscribe to mqtt://{host}:{port} within 10 s")]
    NotSubscribed { host: String, port: u16 },
    #[error("the ingest task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("ingest failed")]
    Failed(#[source] MqttError),
}

/// Commits what ingest decoded into the store, stamped with the clock's receive time.
#[derive(Debug, Clone)]
pub struct StoreSink {
    pub store: Store,
    pub clock: Clock,
}

/// Numbers (and booleans as 0/1) go to the compressed series; text and bytes are kept apart.
/// The points are taken apart, not copied: at a million points a second, copying each point's
/// four names would cost more than storing it.
pub fn to_store(batch: Batch) -> IngestBatch {
    let messages = batch
        .messages
        .into_iter()
        .map(|m| {
            let mut message = IngestMessage {
                key: m.key,
                samples: Vec::with_capacity(m.points.len()),
                others: Vec::new(),
            };
            for p in m.points {
                let number = p.value.as_f64();
                let series = p.series;
                let at_ms = p.timestamp_ms;
                match (p.value, number) {
                    (_, Some(value)) => message.samples.push(Sample {
                        series,
                        at_ms,
                        value,
                    }),
                    (Value::Bytes(b), None) => message.others.push(OtherSample {
                        series,
                        at_ms,
                        value: OtherValue::Bytes(b),
                    }),
                    (Value::Text(t), None) => message.others.push(OtherSample {
                        series,
                        at_ms,
                        value: OtherValue::Text(t),
                    }),
                    (other, None) => message.others.push(OtherSample {
                        series,
                        at_ms,
                        value: OtherValue::Text(format!("{other:?}")),
                    }),
                }
            }
            message
        })
        .collect();
    let quarantined = batch
        .quarantined
        .into_iter()
        .map(|q| QuarantineRow {
            received_ms: q.received_ms,
            topic: q.topic,
            reason_kind: q.reason.kind().to_owned(),
            reason: q.reason.to_string(),
            payload: q.payload,
        })
        .collect();
    IngestBatch {
        messages,
        quarantined,
    }
}

impl Sink for StoreSink {
    async fn commit(&mut self, batch: Batch) -> Result<(), String> {
        self.store
            .commit_ingest(&to_store(batch), self.clock.epoch_ms())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Commits through the store, counts what it settled and optionally records, per message, the
/// time from its timestamp (a publisher's wall clock) to the end of its commit.
struct CountingSink {
    inner: StoreSink,
    points: Arc<AtomicU64>,
    settled: watch::Sender<u64>,
    latencies_ms: Option<Vec<i64>>,
}

impl Sink for CountingSink {
    async fn commit(&mut self, batch: Batch) -> Result<(), String> {
        let settles = batch.settles;
        let points = batch.points() as u64;
        let stamps: Vec<i64> = if self.latencies_ms.is_some() {
            batch
                .messages
                .iter()
                .filter_map(|m| m.points.first().map(|p| p.timestamp_ms))
                .collect()
        } else {
            Vec::new()
        };
        self.inner.commit(batch).await?;
        let done = self.inner.clock.epoch_ms();
        if let Some(l) = &mut self.latencies_ms {
            l.extend(stamps.iter().map(|t| done - t));
        }
        self.points.fetch_add(points, Ordering::Relaxed);
        self.settled.send_modify(|n| *n += settles);
        Ok(())
    }
}

type IngestOutcome = (Result<IngestStats, MqttError>, Vec<i64>);

/// Ingest running as a task of the current runtime, for hosts that feed the broker themselves
/// (demo, serve --mqtt, bench ingest): it counts the messages it has settled, so the caller can
/// wait until everything it published is committed.
#[derive(Debug)]
pub struct IngestTask {
    settled: watch::Receiver<u64>,
    points: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<IngestOutcome>,
}

impl IngestTask {
    /// Starts ingest into `store` and returns once the broker has confirmed the subscriptions.
    pub async fn start(
        broker: &BrokerAddress,
        store: Store,
        client_id: String,
        topics: Vec<String>,
        measure_latency: bool,
        clock: Clock,
    ) -> Result<IngestTask, IngestError> {
        let points = Arc::new(AtomicU64::new(0));
        let (settled_tx, settled) = watch::channel(0u64);
        let subscribed = Arc::new(Notify::new());
        let options = IngestOptions {
            client_id,
            topics,
            subscribed: Some(subscribed.clone()),
            ..IngestOptions::default()
        };
        let (stop, stop_rx) = oneshot::channel::<()>();
        let mut sink = CountingSink {
            inner: StoreSink {
                store,
                clock: clock.clone(),
            },
            points: points.clone(),
            settled: settled_tx,
            latencies_ms: measure_latency.then(Vec::new),
        };
        let broker_owned = broker.clone();
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            let stats = ingest(
                &broker_owned,
                &options,
                &mut sink,
                || clock.epoch_ms(),
                stop,
            )
            .await;
            (stats, sink.latencies_ms.unwrap_or_default())
        });
        let started = tokio::time::timeout(Duration::from_secs(10), subscribed.notified()).await;
        if started.is_err() {
            task.abort();
            return Err(IngestError::NotSubscribed {
                host: broker.host.clone(),
                port: broker.port,
            });
        }
        Ok(IngestTask {
            settled,
            points,
            stop: Some(stop),
            task,
        })
    }

    /// A receiver of the number of messages settled so far.
    pub fn settled(&self) -> watch::Receiver<u64> {
        self.settled.clone()
    }

    /// Points committed so far.
    pub fn points(&self) -> u64 {
        self.points.load(Ordering::Relaxed)
    }

    /// Waits until `messages` messages are settled; false if nothing was settled for `stall`.
    pub async fn wait_for(&mut self, messages: u64, stall: Duration) -> bool {
        loop {
            if *self.settled.borrow_and_update() >= messages {
                return true;
            }
            match tokio::time::timeout(stall, self.settled.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// Stops ingest (it commits what it holds first) and returns its counts and, if asked for,
    /// the latencies.
    pub async fn stop(mut self) -> Result<(IngestStats, Vec<i64>), IngestError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let (stats, latencies) = self.task.await.map_err(IngestError::Task)?;
        Ok((stats.map_err(IngestError::Failed)?, latencies))
    }
}
