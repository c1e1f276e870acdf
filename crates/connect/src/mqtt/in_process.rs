//! Ingest's transport when the embedded broker runs in the same process: one of rumqttd's
//! in-process links, subscribed at QoS 0 (see `broker`'s module doc for why nothing is lost
//! that QoS 1 would keep) and read on a thread of its own, because its receive call blocks.
//!
//! Flow control is the router's: it hands the link a bounded run of messages, then stops until
//! the link says it is ready again, and the thread says so only once the messages before have
//! gone into ingest's bounded channel. Memory stays flat however fast the publishers are.

use super::{Control, Delivered, FromLoop, MqttError, Pump as AnyPump};
use crate::broker::{LocalLink, LocalLinks};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::Packet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the reading thread looks whether ingest has stopped.
const POLL: Duration = Duration::from_millis(50);

/// Ingest's side of a borrowed link: it subscribes and publishes through `tx`.
pub(super) struct Session {
    links: LocalLinks,
    tx: Mutex<LinkTx>,
    /// Ingest's own filters: what the reading thread passes on.
    filters: Arc<Vec<String>>,
    /// Every filter subscribed, to unsubscribe before the link goes back.
    subscribed: Mutex<Vec<String>>,
}

/// The thread that reads the link; it hands the link's receiving half back when it ends.
pub(super) struct Pump {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<LinkRx>,
}

/// Borrows a free link and starts reading it into `out`; `None` when every link is in use (the
/// caller then connects over TCP).
pub(super) fn connect(
    links: &LocalLinks,
    topics: &[String],
    out: mpsc::Sender<FromLoop>,
) -> Option<(Control, AnyPump)> {
    let LocalLink { tx, mut rx } = links.take()?;
    // What a previous run left in the link is not this run's: its filters were other ones.
    while let Ok(Some(_)) = rx.recv_deadline(Instant::now()) {}
    let stop = Arc::new(AtomicBool::new(false));
    let filters = Arc::new(topics.to_vec());
    let thread = std::thread::Builder::new()
        .name("mqtt-in-process".to_owned())
        .spawn({
            let stop = stop.clone();
            let filters = filters.clone();
            move || read(rx, &filters, &out, &stop)
        })
        // The link's receiving half went down with the closure: this link is not reused.
        .ok()?;
    let session = Session {
        links: links.clone(),
        tx: Mutex::new(tx),
        filters,
        subscribed: Mutex::new(Vec::new()),
    };
    Some((
        Control::InProcess(session),
        AnyPump::InProcess(Pump { stop, thread }),
    ))
}

/// Reads the link until `stop` is set or ingest's channel closes; returns the link's receiving
/// half for reuse.
fn read(
    mut rx: LinkRx,
    filters: &[String],
    out: &mpsc::Sender<FromLoop>,
    stop: &AtomicBool,
) -> LinkRx {
    // The link is connected already: ingest subscribes on this.
    if out.blocking_send(FromLoop::Connected).is_err() {
        return rx;
    }
    while !stop.load(Ordering::Relaxed) {
        let deadline = Instant::now() + POLL;
        let notification = match rx.recv_deadline(deadline) {
            Ok(Some(n)) => n,
            // Woken with nothing new.
            Ok(None) => continue,
            Err(_) if Instant::now() >= deadline => continue,
            Err(e) => {
                let why = format!("the embedded broker's in-process link closed: {e}");
                let _ = out.blocking_send(FromLoop::Error(why));
                break;
            }
        };
        let item = match Option::<Packet>::from(notification) {
            Some(Packet::Publish(publish, _)) => {
                let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                if !filters.iter().any(|f| rumqttc::matches(&topic, f)) {
                    continue;
                }
                FromLoop::Publish(Delivered {
                    topic,
                    payload: publish.payload,
                    ack: None,
                })
            }
            Some(Packet::SubAck(..)) => FromLoop::Subscribed,
            Some(_) => continue,
            // The router paused this link (its run of messages is all read): ask for more.
            None => {
                if rx.ready().is_err() {
                    break;
                }
                continue;
            }
        };
        if out.blocking_send(item).is_err() {
            break;
        }
    }
    rx
}

impl Session {
    fn tx(&self) -> MutexGuard<'_, LinkTx> {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn link_error(e: rumqttd::local::LinkError) -> MqttError {
        MqttError::Connection(format!("the embedded broker's in-process link: {e}"))
    }

    pub(super) fn subscribe(&self, filter: &str) -> Result<(), MqttError> {
        self.tx()
            .subscribe(filter.to_owned())
            .map_err(Self::link_error)?;
        self.subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(filter.to_owned());
        Ok(())
    }

    /// Publishes at QoS 0 (a rebirth request). rumqttd drops a local link that publishes where
    /// no subscription exists, so a topic outside ingest's filters is subscribed to first; the
    /// reading thread passes on only what ingest's own filters match.
    pub(super) fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), MqttError> {
        if !self.filters.iter().any(|f| rumqttc::matches(&topic, f)) {
            let known = self
                .subscribed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&topic);
            if !known {
                self.subscribe(&topic)?;
            }
        }
        self.tx()
            .publish(topic, payload)
            .map(|_| ())
            .map_err(Self::link_error)
    }

    /// Unsubscribes, stops the reading thread and gives the link back for the next ingest.
    pub(super) async fn close(self, pump: Pump) {
        let Session {
            links,
            tx,
            subscribed,
            ..
        } = self;
        let mut tx = tx
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for filter in subscribed
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            // A failure means the router is gone, and the link with it: it is not given back.
            if tx.unsubscribe(filter).is_err() {
                return;
            }
        }
        pump.stop.store(true, Ordering::Relaxed);
        if let Ok(Ok(rx)) = tokio::task::spawn_blocking(move || pump.thread.join()).await {
            links.give_back(LocalLink { tx, rx });
        }
    }
}
