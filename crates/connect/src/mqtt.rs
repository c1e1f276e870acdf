//! The MQTT transport for ingest: subscribe at QoS 1 with manual acknowledgements, decode each
//! message (Sparkplug B through a [`HostSession`], or aifactory JSON), hand batches to a
//! [`Sink`], and acknowledge a message to the broker only after the sink has committed it.
//!
//! Why this shape: a point the broker saw acknowledged must be in the store, so the ack follows
//! the commit; if the process dies in between, the broker redelivers (persistent session) and
//! the store's idempotency key drops the duplicates. The event loop runs in its own task so an
//! ack never waits on the loop it must go through; the channel between them is bounded, and
//! the broker's in-flight window bounds what is read but not yet committed: memory stays flat.
//!
//! With the embedded broker in the same process, ingest reads through an in-process link
//! instead (`in_process`): the broker's memory is ingest's, so there is no one to acknowledge
//! to, and what ingest holds unread when the process stops is gone with the broker either way.

#[cfg(feature = "embedded-broker")]
mod in_process;

use crate::sparkplug::{HostSession, NAMESPACE, Topic, rebirth_request};
use crate::{Point, Quarantine, Reason, json};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// `mqtt://host[:port]` (default port 1883) or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    /// The embedded broker's in-process links, when the broker runs in this process: ingest
    /// takes its stream through one of them instead of a TCP connection.
    #[cfg(feature = "embedded-broker")]
    pub in_process: Option<crate::broker::LocalLinks>,
}

impl BrokerAddress {
    /// A broker reached over TCP.
    pub fn tcp(host: impl Into<String>, port: u16) -> BrokerAddress {
        BrokerAddress {
            host: host.into(),
            port,
            #[cfg(feature = "embedded-broker")]
            in_process: None,
        }
    }
}

impl std::str::FromStr for BrokerAddress {
    type Err = MqttError;

    fn from_str(s: &str) -> Result<Self, MqttError> {
        let bad = |why: &str| MqttError::Address(format!("`{s}`: {why}"));
        let rest = match s.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "scheme `{scheme}` is not supported; use mqtt://host:port"
                )));
            }
            None => s,
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port must be a number 1..=65535"))?,
            ),
            None => (rest, 1883),
        };
        if host.is_empty() || port == 0 {
            return Err(bad("expected mqtt://host[:port]"));
        }
        Ok(BrokerAddress::tcp(host, port))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("broker address {0}")]
    Address(String),
    #[error("MQTT client: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error("MQTT connection: {0}")]
    Connection(String),
    #[error("the sink could not commit a batch (nothing of it was acknowledged): {0}")]
    Sink(String),
}

/// The points of one MQTT message. `key` identifies the message (a 128-bit hash of topic and
/// payload) when it carries its own timestamps, so a sink can drop a redelivery; `None` when
/// the same payload twice could be two readings (JSON without `ts`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Received {
    pub key: Option<[u8; 16]>,
    pub points: Vec<Point>,
}

/// What ingest hands its sink: messages to store and messages to quarantine, committed
/// together.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub messages: Vec<Received>,
    pub quarantined: Vec<Quarantine>,
    /// The MQTT messages this batch settles (acknowledged once it is committed), including those
    /// with nothing to store, such as deaths and other hosts' state.
    pub settles: u64,
}

impl Batch {
    pub fn points(&self) -> usize {
        self.messages.iter().map(|m| m.points.len()).sum()
    }
}

/// The identity of a message for exactly-once storage: xxh3-128 of topic, a zero byte, payload.
pub fn message_key(topic: &str, payload: &[u8]) -> [u8; 16] {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(topic.as_bytes());
    hasher.update(&[0]);
    hasher.update(payload);
    hasher.digest128().to_le_bytes()
}

/// Where decoded data goes (the store). `commit` must be durable when it returns `Ok`.
pub trait Sink {
    fn commit(&mut self, batch: Batch) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub client_id: String,
    /// Topic filters to subscribe to.
    pub topics: Vec<String>,
    /// Commit once this many points are waiting, or when no further message is waiting…
    pub batch_points: usize,
    /// …or, under a steady stream, once the oldest waiting message is this old.
    pub max_delay: Duration,
    /// When no further message is waiting but the broker may still send some (fewer are held
    /// than the most ever held at once, the broker's in-flight window as far as seen), wait this
    /// long for them before committing: a commit costs about the same for 5 messages as for 100.
    pub linger: Duration,
    /// At most one rebirth request per node in this interval.
    pub rebirth_interval: Duration,
    /// Crash tests only: abort the process right after this many commits, before acknowledging
    /// the last one, as a `kill -9` at the worst moment would.
    pub abort_after_commits: Option<u64>,
    /// Notified once the broker has confirmed every subscription (after each connect), so a
    /// caller can start publishing knowing nothing will be missed.
    pub subscribed: Option<Arc<Notify>>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            client_id: "aifactory-ingest".to_owned(),
            topics: vec![format!("{NAMESPACE}/#"), format!("{}/#", json::ROOT)],
            batch_points: 50_000,
            max_delay: Duration::from_millis(100),
            linger: Duration::from_millis(2),
            rebirth_interval: Duration::from_secs(5),
            abort_after_commits: None,
            subscribed: None,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestStats {
    pub messages: u64,
    pub points: u64,
    pub quarantined: u64,
    pub quarantined_by_reason: BTreeMap<String, u64>,
    pub rebirths_requested: u64,
    pub commits: u64,
    pub connection_errors: u64,
    pub last_connection_error: Option<String>,
}

enum FromLoop {
    Connected,
    Subscribed,
    Publish(Delivered),
    Error(String),
}

/// A message as ingest reads it, from either transport.
struct Delivered {
    topic: String,
    payload: bytes::Bytes,
    /// What acknowledges it to the broker once committed (QoS 1 over TCP); `None` in process.
    ack: Option<Publish>,
}

impl Delivered {
    fn from_client(p: Publish) -> Delivered {
        // rumqttc acknowledges by QoS and packet id alone: the token keeps no topic or payload.
        let ack = (p.qos != QoS::AtMostOnce).then(|| {
            let mut token = Publish::new("", p.qos, Vec::new());
            token.pkid = p.pkid;
            token
        });
        Delivered {
            topic: p.topic,
            payload: p.payload,
            ack,
        }
    }
}

/// How ingest talks back to its broker: subscriptions, acknowledgements, rebirth requests.
enum Control {
    Client(AsyncClient),
    #[cfg(feature = "embedded-broker")]
    InProcess(in_process::Session),
}

impl Control {
    async fn subscribe(&self, filter: &str) -> Result<(), MqttError> {
        match self {
            Control::Client(client) => Ok(client.subscribe(filter, QoS::AtLeastOnce).await?),
            #[cfg(feature = "embedded-broker")]
            Control::InProcess(session) => session.subscribe(filter),
        }
    }

    async fn ack(&self, token: &Publish) -> Result<(), MqttError> {
        match self {
            Control::Client(client) => Ok(client.ack(token).await?),
            #[cfg(feature = "embedded-broker")]
            Control::InProcess(_) => Ok(()),
        }
    }

    async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), MqttError> {
        match self {
            Control::Client(client) => Ok(client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?),
            #[cfg(feature = "embedded-broker")]
            Control::InProcess(session) => session.publish(topic, payload),
        }
    }

    /// Ends the connection: the pump stops; an in-process link is unsubscribed and given back.
    async fn close(self, pump: Pump) {
        match (self, pump) {
            #[cfg(feature = "embedded-broker")]
            (Control::InProcess(session), Pump::InProcess(pump)) => session.close(pump).await,
            (_, Pump::Client(task)) => task.abort(),
            #[cfg(feature = "embedded-broker")]
            (_, Pump::InProcess(_)) => {}
        }
    }
}

/// What reads the broker and feeds ingest's channel.
enum Pump {
    Client(tokio::task::JoinHandle<()>),
    #[cfg(feature = "embedded-broker")]
    InProcess(in_process::Pump),
}

/// Connects over TCP: a persistent session with manual acknowledgements, its event loop
/// pumped into `tx` by a task of its own.
fn connect_client(
    broker: &BrokerAddress,
    options: &IngestOptions,
    tx: mpsc::Sender<FromLoop>,
) -> (Control, Pump) {
    let mut mqtt = MqttOptions::new(&options.client_id, &broker.host, broker.port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_manual_acks(true)
        // A persistent session: what was delivered but not acknowledged comes again.
        .set_clean_session(false)
        .set_max_packet_size(
            crate::MAX_PAYLOAD_BYTES + 4096,
            crate::MAX_PAYLOAD_BYTES + 4096,
        );
    // Room for an ack per in-flight message, so acknowledging never waits on the loop.
    let (client, mut eventloop) = AsyncClient::new(mqtt, 65_536);
    let pump = tokio::spawn(async move {
        loop {
            let item = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    FromLoop::Publish(Delivered::from_client(p))
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) => FromLoop::Connected,
                Ok(Event::Incoming(Packet::SubAck(_))) => FromLoop::Subscribed,
                Ok(_) => continue,
                Err(e) => {
                    // rumqttc reconnects on the next poll; pause so a dead broker is not spun on.
                    let msg = FromLoop::Error(e.to_string());
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    (Control::Client(client), Pump::Client(pump))
}

/// Runs ingest until `stop` resolves, then commits what is waiting and returns the counts.
/// `clock` gives the receive time in ms since the epoch (for JSON messages without `ts`).
pub async fn ingest<S: Sink + Send>(
    broker: &BrokerAddress,
    options: &IngestOptions,
    sink: &mut S,
    clock: impl Fn() -> i64,
    stop: impl Future<Output = ()>,
) -> Result<IngestStats, MqttError> {
    let (tx, mut rx) = mpsc::channel::<FromLoop>(1024);
    #[cfg(feature = "embedded-broker")]
    let in_process = broker
        .in_process
        .as_ref()
        .and_then(|links| in_process::connect(links, &options.topics, tx.clone()));
    #[cfg(not(feature = "embedded-broker"))]
    let in_process: Option<(Control, Pump)> = None;
    let (client, pump) = match in_process {
        Some(connected) => connected,
        None => connect_client(broker, options, tx),
    };
    let mut state = Ingest {
        session: HostSession::new(),
        stats: IngestStats::default(),
        batch: Batch::default(),
        to_ack: Vec::new(),
        oldest: None,
        last_rebirth: HashMap::new(),
        abort_after_commits: options.abort_after_commits,
    };
    tokio::pin!(stop);
    let mut subscriptions_confirmed = 0;
    // The most messages ever held unacknowledged at once: at that many, the broker sends no more
    // until some are acknowledged, so waiting for more would only waste time.
    let mut window_seen = 0usize;
    let mut linger_until: Option<Instant> = None;
    // One commit may run while the next batch is decoded: the sink travels into the commit and
    // back, and a batch's acknowledgements go out when its commit has finished, in order.
    let mut slot: Option<&mut S> = Some(sink);
    let mut committing: Option<InFlight<'_, S>> = None;
    let result = loop {
        let deadline = state.oldest.map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            |t| {
                let oldest_due = t + options.max_delay;
                linger_until.map_or(oldest_due, |l| l.min(oldest_due))
            },
        );
        tokio::select! {
            () = &mut stop => break Ok(()),
            () = tokio::time::sleep_until(deadline), if state.oldest.is_some() => {
                linger_until = None;
                if let Err(e) = start_commit(&mut state, &mut slot, &mut committing, &client).await {
                    break Err(e);
                }
            }
            (sink_back, result) = async {
                match committing.as_mut() {
                    Some(c) => c.commit.as_mut().await,
                    None => std::future::pending().await,
                }
            }, if committing.is_some() => {
                slot = Some(sink_back);
                let to_ack = committing.take().map(|c| c.to_ack).unwrap_or_default();
                if let Err(e) = state.complete(result, to_ack, &client).await {
                    break Err(e);
                }
            }
            item = rx.recv() => match item {
                None => break Ok(()),
                Some(FromLoop::Connected) => {
                    subscriptions_confirmed = 0;
                    for filter in &options.topics {
                        client.subscribe(filter).await?;
                    }
                }
                Some(FromLoop::Subscribed) => {
                    subscriptions_confirmed += 1;
                    if subscriptions_confirmed == options.topics.len()
                        && let Some(n) = &options.subscribed
                    {
                        n.notify_one();
                    }
                }
                Some(FromLoop::Error(e)) => {
                    state.stats.connection_errors += 1;
                    state.stats.last_connection_error = Some(e);
                }
                Some(FromLoop::Publish(p)) => {
                    let rebirth = state.take(&p, clock());
                    if let Some((group, node)) = rebirth {
                        state.request_rebirth(&client, &group, &node, options, clock()).await?;
                    }
                    state.oldest.get_or_insert_with(Instant::now);
                    state.to_ack.push(p.ack);
                    let held = state.to_ack.len() + committing.as_ref().map_or(0, |c| c.to_ack.len());
                    window_seen = window_seen.max(held);
                    // Commit when the batch is full, or when nothing more is waiting and the
                    // broker has sent all it will before acks (20 unacknowledged messages by
                    // default in Mosquitto, 100 in rumqttd): holding acks for the timer would
                    // throttle the stream. Short of that window, linger briefly for the rest.
                    let full = state.batch.points() >= options.batch_points;
                    let idle = rx.is_empty();
                    if full || (idle && held >= window_seen) {
                        linger_until = None;
                        if let Err(e) = start_commit(&mut state, &mut slot, &mut committing, &client).await {
                            break Err(e);
                        }
                    } else if idle {
                        linger_until.get_or_insert_with(|| Instant::now() + options.linger);
                    }
                }
            },
        }
    };
    let flushed = match result {
        Ok(()) => match start_commit(&mut state, &mut slot, &mut committing, &client).await {
            Ok(()) => finish_commit(&mut state, &mut slot, &mut committing, &client).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    // Closed first: a reading thread blocked on a full channel then ends.
    drop(rx);
    client.close(pump).await;
    flushed.map(|()| state.stats)
}

struct Ingest {
    session: HostSession,
    stats: IngestStats,
    batch: Batch,
    /// Every message read and not yet committed, with its acknowledgement if it needs one.
    to_ack: Vec<Option<Publish>>,
    oldest: Option<Instant>,
    last_rebirth: HashMap<(String, String), Instant>,
    abort_after_commits: Option<u64>,
}

impl Ingest {
    /// Decodes one message into the batch; returns the node to ask for a rebirth, if any.
    fn take(&mut self, p: &Delivered, received_ms: i64) -> Option<(String, String)> {
        self.stats.messages += 1;
        let mut rebirth = None;
        let decoded: Result<(Vec<Point>, bool), Reason> = if p.topic.starts_with(NAMESPACE) {
            if p.topic.starts_with(&format!("{NAMESPACE}/STATE/")) {
                // Another host's state: nothing to store.
                Ok((Vec::new(), false))
            } else {
                match self.session.handle(&p.topic, &p.payload) {
                    Ok(a) => {
                        if a.wants_rebirth() {
                            rebirth = node_of(&p.topic);
                        }
                        // Sparkplug payloads always carry their timestamps.
                        Ok((a.points, true))
                    }
                    Err(r) => {
                        if r.rebirth {
                            rebirth = node_of(&p.topic);
                        }
                        Err(r.reason)
                    }
                }
            }
        } else {
            json::decode(&p.topic, &p.payload, received_ms).map(|d| (d.points, d.timestamped))
        };
        match decoded {
            Ok((points, timestamped)) => {
                self.stats.points += points.len() as u64;
                if !points.is_empty() {
                    self.batch.messages.push(Received {
                        key: timestamped.then(|| message_key(&p.topic, &p.payload)),
                        points,
                    });
                }
            }
            Err(reason) => {
                self.stats.quarantined += 1;
                *self
                    .stats
                    .quarantined_by_reason
                    .entry(reason.kind().to_owned())
                    .or_default() += 1;
                self.batch.quarantined.push(Quarantine {
                    topic: p.topic.clone(),
                    received_ms,
                    payload: p.payload.to_vec(),
                    reason,
                });
            }
        }
        rebirth
    }

    async fn request_rebirth(
        &mut self,
        client: &Control,
        group: &str,
        node: &str,
        options: &IngestOptions,
        now_ms: i64,
    ) -> Result<(), MqttError> {
        let key = (group.to_owned(), node.to_owned());
        if self
            .last_rebirth
            .get(&key)
            .is_some_and(|t| t.elapsed() < options.rebirth_interval)
        {
            return Ok(());
        }
        self.last_rebirth.insert(key, Instant::now());
        let (topic, payload) = rebirth_request(group, node, u64::try_from(now_ms).unwrap_or(0));
        client.publish(topic, payload).await?;
        self.stats.rebirths_requested += 1;
        Ok(())
    }

    /// After a batch's commit: count it, then acknowledge its messages (in the order they came).
    async fn complete(
        &mut self,
        result: Result<(), String>,
        to_ack: Vec<Option<Publish>>,
        client: &Control,
    ) -> Result<(), MqttError> {
        result.map_err(MqttError::Sink)?;
        self.stats.commits += 1;
        if self.abort_after_commits == Some(self.stats.commits) {
            std::process::abort();
        }
        for token in to_ack.iter().flatten() {
            client.ack(token).await?;
        }
        Ok(())
    }
}

/// A commit running: it owns the sink and hands it back with the result.
type Commit<'a, S> = Pin<Box<dyn Future<Output = (&'a mut S, Result<(), String>)> + Send + 'a>>;

/// A commit under way and the messages it settles.
struct InFlight<'a, S> {
    commit: Commit<'a, S>,
    to_ack: Vec<Option<Publish>>,
}

/// Waits for the commit in flight, if any, and acknowledges its messages.
async fn finish_commit<'a, S: Sink + Send>(
    state: &mut Ingest,
    slot: &mut Option<&'a mut S>,
    committing: &mut Option<InFlight<'a, S>>,
    client: &Control,
) -> Result<(), MqttError> {
    if let Some(c) = committing.take() {
        let (sink, result) = c.commit.await;
        *slot = Some(sink);
        state.complete(result, c.to_ack, client).await?;
    }
    Ok(())
}

/// Starts committing what is batched, once the commit in flight (if any) is done.
async fn start_commit<'a, S: Sink + Send>(
    state: &mut Ingest,
    slot: &mut Option<&'a mut S>,
    committing: &mut Option<InFlight<'a, S>>,
    client: &Control,
) -> Result<(), MqttError> {
    finish_commit(state, slot, committing, client).await?;
    state.oldest = None;
    if state.to_ack.is_empty() {
        return Ok(());
    }
    let Some(sink) = slot.take() else {
        return Err(MqttError::Sink(
            "internal: the sink is still in a commit".to_owned(),
        ));
    };
    let mut batch = std::mem::take(&mut state.batch);
    let to_ack = std::mem::take(&mut state.to_ack);
    batch.settles = to_ack.len() as u64;
    *committing = Some(InFlight {
        commit: Box::pin(async move {
            let result = sink.commit(batch).await;
            (sink, result)
        }),
        to_ack,
    });
    Ok(())
}

/// What a publisher sent and the broker confirmed.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PublishStats {
    pub messages: u64,
    pub bytes: u64,
    pub acknowledged: u64,
}

/// Publishes every message from `messages` in order at QoS 1 until the channel closes, waits
/// until the broker has acknowledged them all, and disconnects. `will` (a Sparkplug NDEATH) is
/// registered as the last will, so subscribers learn of a crash. A bounded channel on the
/// producing side and the client's request queue here give back-pressure: a slow broker slows
/// the producer instead of filling memory.
pub async fn publish_stream(
    broker: &BrokerAddress,
    client_id: &str,
    will: Option<&crate::sparkplug::Message>,
    messages: mpsc::Receiver<crate::sparkplug::Message>,
) -> Result<PublishStats, MqttError> {
    publish_stream_with_commands(broker, client_id, will, messages, None).await
}

/// [`publish_stream`], also subscribed at QoS 1 to `commands.0` (e.g. the node's DCMD topics):
/// every message received there is handed to `commands.1`, as an edge node hears its commands.
pub async fn publish_stream_with_commands(
    broker: &BrokerAddress,
    client_id: &str,
    will: Option<&crate::sparkplug::Message>,
    mut messages: mpsc::Receiver<crate::sparkplug::Message>,
    commands: Option<(String, mpsc::UnboundedSender<crate::sparkplug::Message>)>,
) -> Result<PublishStats, MqttError> {
    let mut mqtt = MqttOptions::new(client_id, &broker.host, broker.port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(
            crate::MAX_PAYLOAD_BYTES + 4096,
            crate::MAX_PAYLOAD_BYTES + 4096,
        );
    if let Some(w) = will {
        mqtt.set_last_will(rumqttc::LastWill::new(
            w.topic.clone(),
            w.payload.clone(),
            QoS::AtLeastOnce,
            false,
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 1024);
    let commands_tx = match commands {
        Some((filter, tx)) => {
            // Queued now, sent once connected.
            client.subscribe(filter, QoS::AtLeastOnce).await?;
            Some(tx)
        }
        None => None,
    };
    let (acked_tx, mut acked_rx) = tokio::sync::watch::channel(0u64);
    let (failed_tx, mut failed_rx) = tokio::sync::watch::channel(None::<String>);
    let pump = tokio::spawn(async move {
        let mut acked = 0u64;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    let _ = acked_tx.send(acked);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(tx) = &commands_tx {
                        let _ = tx.send(crate::sparkplug::Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // A publisher has nobody to hand a reconnect's losses to: stop and say why.
                    let _ = failed_tx.send(Some(e.to_string()));
                    break;
                }
            }
        }
    });
    let mut stats = PublishStats::default();
    let failure = |rx: &tokio::sync::watch::Receiver<Option<String>>| rx.borrow().clone();
    while let Some(m) = messages.recv().await {
        if let Some(e) = failure(&failed_rx) {
            pump.abort();
            return Err(MqttError::Connection(e));
        }
        stats.bytes += m.payload.len() as u64;
        tokio::select! {
            sent = client.publish(m.topic, QoS::AtLeastOnce, false, m.payload) => sent?,
            _ = failed_rx.changed() => {
                pump.abort();
                return Err(MqttError::Connection(failure(&failed_rx).unwrap_or_default()));
            }
        }
        stats.messages += 1;
    }
    // Wait for the last acknowledgement (or a failure) before saying goodbye.
    let result = loop {
        if *acked_rx.borrow() >= stats.messages {
            break Ok(());
        }
        if let Some(e) = failure(&failed_rx) {
            break Err(MqttError::Connection(e));
        }
        tokio::select! {
            changed = acked_rx.changed() => if changed.is_err() {
                break Err(MqttError::Connection("the connection closed before every message was acknowledged".to_owned()));
            },
            changed = failed_rx.changed() => if changed.is_err() {
                break Err(MqttError::Connection("the connection closed before every message was acknowledged".to_owned()));
            },
        }
    };
    stats.acknowledged = *acked_rx.borrow();
    if result.is_ok() {
        // A clean disconnect: the broker drops the will instead of publishing it.
        let _ = client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pump.abort();
    result.map(|()| stats)
}

/// One message from a [`Link`]'s subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    /// On a persistent link: what [`Link::ack`] takes once the message is safely kept.
    pub delivery: Option<Delivery>,
}

/// A message the broker delivered and will deliver again until it is acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery(Publish);

/// A two-way MQTT connection for the plant contract: what is published on its filters comes
/// out of the receiver [`Link::connect`] returns, in the broker's order, and
/// [`Link::publish`] queues a QoS 1 message without waiting. It reconnects (and subscribes
/// again) by itself after the broker goes away. A persistent link acknowledges a message only
/// when told ([`Link::ack`], after it is kept): what a crash interrupts comes again.
#[derive(Debug)]
pub struct Link {
    client: AsyncClient,
    pump: tokio::task::JoinHandle<()>,
}

/// Messages queued for the broker before [`Link::publish`] refuses more.
const LINK_QUEUE: usize = 10_000;

impl Link {
    /// Connects, subscribes to `filters` at QoS 1 and waits (at most 10 s) for the broker to
    /// accept the connection. A `persistent` session keeps what arrives while this client is
    /// away, for when it comes back under the same id.
    pub async fn connect(
        broker: &BrokerAddress,
        client_id: &str,
        filters: &[String],
        persistent: bool,
    ) -> Result<(Link, mpsc::Receiver<Incoming>), MqttError> {
        let mut mqtt = MqttOptions::new(client_id, &broker.host, broker.port);
        mqtt.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(!persistent)
            .set_manual_acks(persistent)
            .set_max_packet_size(
                crate::MAX_PAYLOAD_BYTES + 4096,
                crate::MAX_PAYLOAD_BYTES + 4096,
            );
        let (client, mut eventloop) = AsyncClient::new(mqtt, LINK_QUEUE);
        // A lockstep answer is one small packet the plant waits for: Nagle's algorithm would
        // hold it for the previous packet's acknowledgement (tens of ms per step).
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let (up_tx, mut up_rx) = tokio::sync::watch::channel(None::<Result<(), String>>);
        let resubscribe = client.clone();
        let filters = filters.to_vec();
        let pump = tokio::spawn(async move {
            // Up once the broker has granted every subscription: a message another client
            // publishes the moment `connect` returns must reach this one.
            let mut unacknowledged = 0usize;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = resubscribe.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                        unacknowledged = filters.len();
                        if unacknowledged == 0 {
                            let _ = up_tx.send(Some(Ok(())));
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) if unacknowledged > 0 => {
                        unacknowledged -= 1;
                        if unacknowledged == 0 {
                            let _ = up_tx.send(Some(Ok(())));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let incoming = Incoming {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            delivery: persistent.then(|| Delivery(p.clone())),
                        };
                        if tx.send(incoming).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if up_tx.borrow().is_none() {
                            let _ = up_tx.send(Some(Err(e.to_string())));
                        }
                        // rumqttc reconnects on the next poll; do not spin while it is down.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        let up = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(state) = up_rx.borrow().clone() {
                    return state;
                }
                if up_rx.changed().await.is_err() {
                    return Err("the connection task stopped".to_owned());
                }
            }
        })
        .await;
        match up {
            Ok(Ok(())) => Ok((Link { client, pump }, rx)),
            Ok(Err(e)) => {
                pump.abort();
                Err(MqttError::Connection(e))
            }
            Err(_) => {
                pump.abort();
                Err(MqttError::Connection(format!(
                    "no answer from mqtt://{}:{} within 10 s",
                    broker.host, broker.port
                )))
            }
        }
    }

    /// Queues one QoS 1 message; fails only when the queue to the broker is full or closed.
    pub fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) -> Result<(), MqttError> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(MqttError::Client)
    }

    /// Queues one QoS 1 message, waiting while the queue to the broker is full.
    pub async fn publish_waiting(
        &self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), MqttError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(MqttError::Client)
    }

    /// Acknowledges a delivered message to the broker: it will not come again.
    pub fn ack(&self, delivery: &Delivery) -> Result<(), MqttError> {
        self.client.try_ack(&delivery.0).map_err(MqttError::Client)
    }

    /// Disconnects after what was queued has gone out (at most 2 s).
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pump).await;
    }
}

fn node_of(topic: &str) -> Option<(String, String)> {
    Topic::parse(topic)
        .ok()
        .map(|t| (t.group, t.node))
        .or_else(|| {
            // A topic too broken to parse still names its group and node in the usual places.
            let parts: Vec<&str> = topic.split('/').collect();
            (parts.len() >= 4).then(|| (parts[1].to_owned(), parts[3].to_owned()))
        })
}

#[cfg(test)]
mod tests {
    use super::BrokerAddress;

    #[test]
    fn broker_addresses() {
        let a: Result<BrokerAddress, _> = "mqtt://127.0.0.1:1884".parse();
        assert_eq!(a.ok(), Some(BrokerAddress::tcp("127.0.0.1", 1884)));
        assert_eq!(
            "broker.local".parse::<BrokerAddress>().ok().map(|a| a.port),
            Some(1883)
        );
        for bad in ["http://x:1", "mqtt://:1883", "mqtt://x:port", "mqtt://x:0"] {
            assert!(bad.parse::<BrokerAddress>().is_err(), "{bad}");
        }
    }
}
