//! Evidence over NATS JetStream: a plant publishes its signed bundle on
//! `<prefix>.<plant id>`; the portal's durable consumer takes each message through the same
//! evidence path as an upload, records the verdict, and acknowledges it. The stream is a work
//! queue (a message is gone once the portal has recorded it), and a publish carries the
//! bundle's SHA-256 as its message id, so a plant that resends after a lost acknowledgement
//! does not submit twice.
//!
//! Over NATS nobody signs in: the bundle's signature is the only identity, so the portal only
//! takes bundles for plants whose evidence key it already holds (registered, or pinned by a
//! first upload over HTTPS); a bundle for a plant without one is refused with that reason.

use crate::error::PortalError;
use crate::evidence::Via;
use crate::model::Caller;
use crate::portal::Portal;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::watch;

/// Where evidence travels: the stream and the subject prefix (plants publish on `prefix.ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceChannel {
    pub url: String,
    pub stream: String,
    pub prefix: String,
}

impl EvidenceChannel {
    pub fn new(url: impl Into<String>) -> EvidenceChannel {
        EvidenceChannel {
            url: url.into(),
            stream: "AIFACTORY_EVIDENCE".into(),
            prefix: "aifactory.evidence".into(),
        }
    }

    fn subjects(&self) -> String {
        format!("{}.*", self.prefix)
    }
}

/// What can go wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("connecting to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error(
        "the bundle is {size} bytes; this NATS server takes at most {max} per message: submit it over HTTPS (POST /api/v1/plants/ID/evidence) or raise the server's max_payload"
    )]
    TooLarge { size: usize, max: usize },
    #[error("publishing on {subject}: {reason}")]
    Publish { subject: String, reason: String },
    #[error("plant id {0:?} cannot be a NATS subject token")]
    Subject(String),
}

async fn connect(channel: &EvidenceChannel) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(10))
        .connect(channel.url.as_str())
        .await
        .map_err(|e| NatsError::Connect {
            url: channel.url.clone(),
            reason: e.to_string(),
        })
}

async fn evidence_stream(
    js: &jetstream::Context,
    channel: &EvidenceChannel,
) -> Result<stream::Stream, NatsError> {
    let created = js
        .get_or_create_stream(stream::Config {
            name: channel.stream.clone(),
            subjects: vec![channel.subjects()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            // Resends of one bundle within a day are one message.
            duplicate_window: Duration::from_secs(86_400),
            ..Default::default()
        })
        .await;
    match created {
        Ok(stream) => Ok(stream),
        // Another party (a plant's first publish, the portal's consumer starting) may have
        // created it between this one's look and its create, and the server then refuses the
        // create ("subjects overlap"): the stream that is there now is the one wanted.
        Err(first) => js
            .get_stream(&channel.stream)
            .await
            .map_err(|_| NatsError::Stream {
                stream: channel.stream.clone(),
                reason: first.to_string(),
            }),
    }
}

/// Publishes a plant's bundle and waits for JetStream to store it.
pub async fn publish_bundle(
    channel: &EvidenceChannel,
    plant: &str,
    bytes: Vec<u8>,
) -> Result<(), NatsError> {
    crate::registry::check_id("plant", plant).map_err(|_| NatsError::Subject(plant.into()))?;
    if plant.contains('.') {
        return Err(NatsError::Subject(plant.into()));
    }
    let client = connect(channel).await?;
    let max = client.server_info().max_payload;
    if max > 0 && bytes.len() > max {
        return Err(NatsError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let js = jetstream::new(client);
    evidence_stream(&js, channel).await?;
    let subject = format!("{}.{plant}", channel.prefix);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", hex::encode(Sha256::digest(&bytes)).as_str());
    let fail = |e: String| NatsError::Publish {
        subject: subject.clone(),
        reason: e,
    };
    // A stream that was just created can take a moment to listen on its subjects: the server
    // answers "no stream" meanwhile. Retry that for a while; anything else fails at once.
    let mut attempts = 0;
    loop {
        let sent = js
            .publish_with_headers(subject.clone(), headers.clone(), bytes.clone().into())
            .await
            .map_err(|e| fail(e.to_string()))?
            .await;
        match sent {
            Ok(_) => return Ok(()),
            Err(e)
                if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound
                    && attempts < 50 =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
}

/// What the consumer made of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Accepted {
        plant: String,
        tier: i16,
    },
    Refused {
        plant: String,
        reason: String,
    },
    /// Not a plant the portal knows, or not a plant subject: dropped (and logged).
    Dropped {
        subject: String,
        reason: String,
    },
}

/// Consumes evidence until `stop` turns true; `report` hears about every message. Database
/// trouble leaves the message unacknowledged for JetStream to deliver again.
pub async fn consume_evidence(
    portal: Portal,
    channel: EvidenceChannel,
    mut stop: watch::Receiver<bool>,
    report: impl Fn(Received) + Send + Sync + 'static,
) -> Result<(), NatsError> {
    use futures_util::StreamExt;
    let client = connect(&channel).await?;
    let js = jetstream::new(client);
    let stream = evidence_stream(&js, &channel).await?;
    let stream_error = |e: String| NatsError::Stream {
        stream: channel.stream.clone(),
        reason: e,
    };
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            "portal",
            consumer::pull::Config {
                durable_name: Some("portal".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| stream_error(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| stream_error(e.to_string()))?;
    let prefix = format!("{}.", channel.prefix);
    loop {
        let next = tokio::select! {
            _ = stop.changed() => break,
            next = messages.next() => next,
        };
        let Some(message) = next else { break };
        let message = match message {
            Ok(m) => m,
            // A heartbeat missed or a reconnect: the stream resumes by itself.
            Err(_) => continue,
        };
        let subject = message.subject.to_string();
        let Some(plant) = subject.strip_prefix(&prefix).map(str::to_owned) else {
            let _ = message.ack_with(AckKind::Term).await;
            report(Received::Dropped {
                subject,
                reason: "not an evidence subject".into(),
            });
            continue;
        };
        let outcome = portal
            .submit_evidence_via(
                &Caller::system(),
                &plant,
                message.payload.to_vec(),
                Via::Nats,
            )
            .await;
        let (ack, received) = match outcome {
            Ok(record) => (
                AckKind::Ack,
                Received::Accepted {
                    plant,
                    tier: record.tier.unwrap_or(0),
                },
            ),
            Err(PortalError::Evidence(reason)) => {
                (AckKind::Ack, Received::Refused { plant, reason })
            }
            Err(PortalError::NotFound { .. }) => (
                AckKind::Term,
                Received::Dropped {
                    subject,
                    reason: format!("plant {plant} is not registered"),
                },
            ),
            // The database is down or busy: let JetStream deliver it again later.
            Err(e) => (
                AckKind::Nak(Some(Duration::from_secs(5))),
                Received::Dropped {
                    subject,
                    reason: format!("will retry: {e}"),
                },
            ),
        };
        let _ = message.ack_with(ack).await;
        report(received);
    }
    Ok(())
}

/// Removes the stream (tests and tear-down).
pub async fn delete_stream(channel: &EvidenceChannel) -> Result<(), NatsError> {
    let client = connect(channel).await?;
    let js = jetstream::new(client);
    js.delete_stream(&channel.stream)
        .await
        .map_err(|e| NatsError::Stream {
            stream: channel.stream.clone(),
            reason: e.to_string(),
        })?;
    Ok(())
}
